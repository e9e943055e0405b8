"""The forecast panel in memory: a small typed object passed from ``forecasters`` to ``envs``.

``ForecastPanel.values[i, j, k]`` is the quantile ``quantile_levels[k]`` of the forward log
return ``log(close[t+h]/close[t])`` for ``h = horizons[j]``, predicted after the close of
``dates[i]`` by a model whose training rows had all resolved by then. Dates without an
out-of-sample forecast are absent (or NaN after :meth:`ForecastPanel.reindex`), never filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.codecs import parse_quantile_column

__all__ = ["ForecastPanel"]

_LEVEL_TOL = 1e-9


@dataclass(frozen=True)
class ForecastPanel:
    """One model's out-of-sample forecasts: dates x horizons x quantile levels."""

    dates: pd.DatetimeIndex
    horizons: tuple[int, ...]
    quantile_levels: tuple[float, ...]
    values: np.ndarray  # float64 [n_dates, n_horizons, n_levels]
    model: str = "ensemble"

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.horizons), len(self.quantile_levels))
        if self.values.shape != shape:
            raise ValueError(
                f"ForecastPanel.values has shape {self.values.shape}, expected "
                f"{shape} (dates, horizons, quantile levels)"
            )
        if list(self.quantile_levels) != sorted(self.quantile_levels):
            raise ValueError("ForecastPanel.quantile_levels must be sorted")

    def __len__(self) -> int:
        return len(self.dates)

    def level_index(self, level: float) -> int:
        """Position of a quantile level; KeyError naming the levels present when absent."""
        for k, have in enumerate(self.quantile_levels):
            if abs(have - level) < _LEVEL_TOL:
                return k
        raise KeyError(f"quantile level {level} not in the forecast panel {self.quantile_levels}")

    def quantile(self, horizon: int, level: float) -> np.ndarray:
        """Forecast quantile ``level`` at ``horizon`` bars for every date."""
        return self.values[:, self.horizons.index(horizon), self.level_index(level)]

    def reindex(self, dates: pd.DatetimeIndex) -> ForecastPanel:
        """The panel on ``dates`` (NaN where no forecast exists)."""
        pos = self.dates.get_indexer(dates)
        values = np.full((len(dates), len(self.horizons), len(self.quantile_levels)), np.nan)
        found = pos >= 0
        values[found] = self.values[pos[found]]
        return ForecastPanel(
            pd.DatetimeIndex(dates), self.horizons, self.quantile_levels, values, self.model
        )

    def complete(self) -> np.ndarray:
        """Bool per date: every horizon and level is present."""
        return np.isfinite(self.values).all(axis=(1, 2))

    @classmethod
    def from_long(cls, panel: pd.DataFrame, model: str = "ensemble") -> ForecastPanel:
        """One model of the long panel (``date, model, horizon, q<level>...``) as a typed panel."""
        rows = panel[panel["model"] == model]
        if rows.empty:
            raise KeyError(
                f"model {model!r} not in the forecast panel; models: "
                f"{sorted(panel['model'].unique())}"
            )
        named_q = [c for c in panel.columns if str(c).startswith("q")]
        level_cols = sorted((c for c in named_q if parse_quantile_column(c) is not None),
                            key=parse_quantile_column)
        if len(level_cols) != len(named_q):
            raise ValueError(f"forecast panel level columns {named_q} are not q<level> names "
                             "(q0.050 ...)")
        levels = tuple(parse_quantile_column(c) for c in level_cols)
        horizons = tuple(int(h) for h in sorted(rows["horizon"].unique()))
        dates = pd.DatetimeIndex(sorted(rows["date"].unique()), name="date")
        values = np.full((len(dates), len(horizons), len(levels)), np.nan)
        di = dates.get_indexer(pd.DatetimeIndex(rows["date"]))
        hi = pd.Index(horizons).get_indexer(rows["horizon"].astype(int))
        values[di, hi, :] = rows[level_cols].to_numpy(dtype="float64")
        return cls(dates, horizons, levels, values, model)
