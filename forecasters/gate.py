"""The seed's tolerance gate: may a forecast panel feed trading?

``evaluate_gate`` checks one model of a panel over a date window against ``GateConfig``: at each
gate horizon the share of median price forecasts within +/- ``hit_tolerance_pct`` of the realised
price must reach ``min_hit_share``, and the realised coverage of the ``coverage_nominal``
interval must lie in [coverage_min, coverage_max]. The result lists every threshold with its
measured value and pass or fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from common.units import PERCENT_PER_UNIT
from forecasters.base import interval_pairs, quantile_column
from forecasters.config import GateConfig
from forecasters.metrics import panel_levels, realised


@dataclass(frozen=True)
class GateCheck:
    """One threshold of the gate at one horizon, with the value measured against it."""

    horizon: int
    measure: str
    value: float
    low: float
    high: float
    n: int
    passed: bool

    def describe(self) -> str:
        """'h=1 hit_2pct 0.912 >= 0.500: pass' style line."""
        bound = f">= {self.low:.3f}" if self.high >= 1 else f"in [{self.low:.3f}, {self.high:.3f}]"
        verdict = "pass" if self.passed else "FAIL"
        return f"h={self.horizon} {self.measure} {self.value:.3f} {bound} (n={self.n}): {verdict}"


@dataclass(frozen=True)
class GateResult:
    """Every check of the gate, the window and model checked, and whether all passed."""

    model: str
    start: str
    end: str
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict:
        """JSON-ready record (provenance, reports)."""
        return {
            "model": self.model,
            "start": self.start,
            "end": self.end,
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
        }

    def lines(self) -> list[str]:
        """A title line, then one line per threshold."""
        head = (
            f"Forecast gate ({self.model}, forecasts dated {self.start}..{self.end}): "
            f"{'PASS' if self.passed else 'FAIL'}"
        )
        return [head, *(f"  {check.describe()}" for check in self.checks)]


def evaluate_gate(
    panel: pd.DataFrame, frame: pd.DataFrame, gate: GateConfig, start=None, end=None
) -> GateResult:
    """Check ``gate`` on ``gate.model``'s forecasts dated in [start, end] whose outcome is known
    by ``end`` (so that a gate on the validation segment never reads a later price).

    Raises ValueError naming the model, level or horizon that the panel lacks.
    """
    rows = panel[panel["model"] == gate.model]
    if rows.empty:
        raise ValueError(
            f"forecast.gate.model {gate.model!r} is not in the panel; models: "
            f"{sorted(panel['model'].unique())}"
        )
    levels = panel_levels(panel)
    pair = next(
        (
            (levels[lo], levels[hi])
            for lo, hi, cov in interval_pairs(levels)
            if abs(cov - gate.coverage_nominal) < 1e-9
        ),
        None,
    )
    if pair is None:
        raise ValueError(
            f"forecast.gate.coverage_nominal {gate.coverage_nominal} is not an interval of the "
            f"panel's quantile levels {levels}"
        )
    rows = realised(rows, frame)
    dates = pd.DatetimeIndex(rows["date"])
    known = np.array(rows["log_return"].notna(), dtype=bool)
    if start is not None:
        known &= dates >= pd.Timestamp(start)
    if end is not None:
        target = pd.DatetimeIndex(rows["target_date"])
        known &= (dates <= pd.Timestamp(end)) & (target <= pd.Timestamp(end) + pd.Timedelta(days=1))
    rows = rows[known]
    tolerance = gate.hit_tolerance_pct / PERCENT_PER_UNIT
    checks = []
    for horizon in gate.horizons:
        g = rows[rows["horizon"] == horizon]
        if g.empty:
            raise ValueError(
                f"forecast.gate: no resolved {gate.model} forecasts at h={horizon} between "
                f"{start} and {end}"
            )
        actual = g["close_target"].to_numpy(float)
        median = g["close_t"].to_numpy(float) * np.exp(g[quantile_column(0.5)].to_numpy(float))
        hit = float(np.mean(np.abs(median - actual) / actual <= tolerance))
        r = g["log_return"].to_numpy(float)
        lo, hi = (g[quantile_column(q)].to_numpy(float) for q in pair)
        coverage = float(np.mean((r >= lo) & (r <= hi)))
        n = int(len(g))
        checks.append(
            GateCheck(int(horizon), f"hit_{gate.hit_tolerance_pct:g}pct", hit,
                      gate.min_hit_share, 1.0, n, hit >= gate.min_hit_share)
        )  # fmt: skip
        checks.append(
            GateCheck(int(horizon), f"coverage_{round(gate.coverage_nominal * PERCENT_PER_UNIT)}",
                      coverage, gate.coverage_min, gate.coverage_max, n,
                      gate.coverage_min <= coverage <= gate.coverage_max)
        )  # fmt: skip
    return GateResult(gate.model, _day(start, dates), _day(end, dates, last=True), tuple(checks))


def _day(value, dates: pd.DatetimeIndex, last: bool = False) -> str:
    if value is not None:
        return str(pd.Timestamp(value).date())
    return str((dates.max() if last else dates.min()).date()) if len(dates) else "-"


__all__ = ["GateCheck", "GateResult", "evaluate_gate"]
