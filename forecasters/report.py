"""Walk-forward plus evaluation into one output folder (what the CLI runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common.errors import UserInputError
from common.io import write_json_atomic, write_parquet_atomic, write_text_atomic
from common.units import PERCENT_PER_UNIT
from data import bars_per_year
from forecasters.config import ForecastConfig
from forecasters.gate import GateResult, evaluate_gate
from forecasters.metrics import (
    coverage_by_year_table,
    evaluate_panel,
    tercile_edges,
    vol_tercile,
    write_metrics,
)
from forecasters.plots import (
    plot_coverage,
    plot_hit_rate,
    plot_price_bands,
    plot_reliability,
    plot_rolling_coverage,
    plot_rolling_window,
)
from forecasters.walkforward import ENSEMBLE, STEPS_ATTR, load_or_make_panel, vol_per_bar

PLOTS = (
    "price_bands.png",
    "rolling_coverage.png",
    "hit_rate.png",
    "coverage.png",
    "rolling_30d.png",
    "reliability.png",
)
"""The PNGs ``run_report`` writes."""


def run_report(
    frame: pd.DataFrame,
    config: ForecastConfig,
    out_dir: str | Path,
    eval_start,
    eval_end,
    progress: bool = True,
    features: pd.DataFrame | None = None,
    regime_start=None,
    regime_end=None,
) -> tuple[dict, GateResult | None]:
    """Write ``panel.parquet``, ``metrics.json``, ``metrics.md``, plots and the forecast config.

    Volatility terciles use the per-bar volatility known at forecast time (implied-vol index,
    realised where it is missing) with cut points from [regime_start, regime_end] (the training
    segment); without them, from every bar before ``eval_start``. When ``config.gate`` is
    enabled the gate is checked on the evaluated segment and written to ``gate.json``. Returns
    the metrics and the gate's result (None when off).
    """
    out_dir = Path(out_dir)
    config = config.resolved()
    panel = load_or_make_panel(frame, config, progress=progress, features=features)
    write_parquet_atomic(panel, out_dir / "panel.parquet")
    write_text_atomic(
        yaml.safe_dump({"forecast": config.model_dump(mode="json")}, sort_keys=False),
        out_dir / "forecast_config.yaml",
    )
    vol = vol_per_bar(frame, config)
    if regime_start is None and regime_end is None:
        before = vol.index < pd.Timestamp(eval_start) if eval_start is not None else slice(None)
        edges = tercile_edges(vol[before])
    else:
        edges = tercile_edges(vol, regime_start, regime_end)
    metrics = evaluate_panel(panel, frame, eval_start, eval_end, vol=vol, edges=edges)
    steps = panel.attrs.get(STEPS_ATTR, [])
    write_json_atomic(
        {"tercile_edges_per_bar": list(edges), "steps": steps}, out_dir / "conformal.json"
    )
    gate = None
    if config.gate.enabled:
        try:
            gate = evaluate_gate(panel, frame, config.gate, eval_start, eval_end)
        except ValueError as exc:
            raise UserInputError(str(exc)) from None
        write_json_atomic(gate.to_dict(), out_dir / "gate.json")
    extra = [
        _long_view_markdown(metrics),
        _gate_markdown(gate),
        _calibration_markdown(frame, edges, steps),
    ]
    write_metrics(metrics, out_dir, "\n".join(extra))
    model = ENSEMBLE if ENSEMBLE in metrics else sorted(metrics)[0]
    tercile = pd.Series(vol_tercile(vol.to_numpy(float), edges), index=vol.index)
    plot_price_bands(
        panel, frame, out_dir / "price_bands.png", model=model, start=eval_start, end=eval_end
    )
    plot_rolling_coverage(
        panel, frame, out_dir / "rolling_coverage.png", tercile, model, eval_start, eval_end
    )
    plot_hit_rate(metrics, out_dir / "hit_rate.png")
    plot_coverage(metrics, out_dir / "coverage.png")
    plot_rolling_window(panel, frame, out_dir / "rolling_30d.png", model=model, end=eval_end)
    plot_reliability(metrics, out_dir / "reliability.png")
    return metrics, gate


def _long_view_markdown(metrics: dict) -> str:
    """Coverage and interval score by year for the ensemble and the two references."""
    parts = []
    for key, title in (
        ("coverage_75", "75% interval coverage (%) by year, h = 1..H"),
        ("coverage_90", "90% interval coverage (%) by year, h = 1..H"),
        ("interval_score_75", "75% interval score (% log return, lower is better) by year"),
    ):
        table = coverage_by_year_table(metrics, key=key)
        if table:
            parts += [f"## {title}\n", table]
    return "\n".join(parts)


def _gate_markdown(gate: GateResult | None) -> str:
    if gate is None:
        return "## Forecast gate\n\nOff (forecast.gate.enabled is false).\n"
    lines = gate.lines()
    return (
        "\n".join(["## Forecast gate\n", lines[0] + "\n", *(f"- {x.strip()}" for x in lines[1:])])
        + "\n"
    )


def _calibration_markdown(frame: pd.DataFrame, edges, steps: list[dict]) -> str:
    annual = np.sqrt(bars_per_year(frame.index))
    lines = [
        "## Calibration\n",
        f"Volatility tercile cut points (annualised): {edges[0] * annual:.3f}, "
        f"{edges[1] * annual:.3f}.\n",
    ]
    if steps:
        lines += [
            "Tracking steps chosen on the selection window (validation segment):\n",
            "| model | h | interval | method | step | coverage there | interval score there (%) | n |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in steps:
            lines.append(
                f"| {s['model']} | {s['horizon']} | {s['coverage_nominal']:.2f} | {s['method']} | "
                f"{s['step']:g} | "
                f"{s['coverage_selection']:.3f} | {s['interval_score_selection'] * PERCENT_PER_UNIT:.3f} | "
                f"{s['n_selection']} |"
            )
    return "\n".join(lines) + "\n"
