"""Walk-forward plus evaluation into one output folder (what the CLI runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from forecasters.config import ForecastConfig
from forecasters.metrics import evaluate_panel, write_metrics
from forecasters.plots import plot_coverage, plot_price_bands, plot_rolling_window
from forecasters.walkforward import ENSEMBLE, load_or_make_panel


def run_report(
    frame: pd.DataFrame,
    config: ForecastConfig,
    out_dir: str | Path,
    eval_start,
    eval_end,
    progress: bool = True,
    features: pd.DataFrame | None = None,
) -> dict:
    """Write ``panel.parquet``, ``metrics.json``, ``metrics.md``, plots and the forecast config."""
    from common.io import write_parquet_atomic, write_text_atomic

    out_dir = Path(out_dir)
    panel = load_or_make_panel(frame, config, progress=progress, features=features)
    write_parquet_atomic(panel, out_dir / "panel.parquet")
    resolved = config.resolved().model_dump(mode="json")
    write_text_atomic(
        yaml.safe_dump({"forecast": resolved}, sort_keys=False), out_dir / "forecast_config.yaml"
    )
    metrics = evaluate_panel(panel, frame, eval_start, eval_end)
    write_metrics(metrics, out_dir)
    model = ENSEMBLE if ENSEMBLE in metrics else sorted(metrics)[0]
    plot_price_bands(
        panel, frame, out_dir / "price_bands.png", model=model, start=eval_start, end=eval_end
    )
    plot_coverage(metrics, out_dir / "coverage.png")
    plot_rolling_window(panel, frame, out_dir / "rolling_30d.png", model=model, end=eval_end)
    return metrics
