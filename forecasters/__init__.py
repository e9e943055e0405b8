"""Quantile forecasters of forward log returns, the stacked ensemble and walk-forward panels."""

from forecasters.base import (
    RETURN_COLUMN,
    VOL_COLUMN,
    Forecaster,
    QuantileForecaster,
    pinball_loss,
    quantile_column,
    wide_column,
)
from forecasters.config import ForecastConfig
from forecasters.ensemble import StackedEnsemble
from forecasters.gate import GateResult, evaluate_gate
from forecasters.live import LiveForecaster
from forecasters.metrics import METRIC_KEYS, evaluate_panel, metrics_table, write_metrics
from forecasters.models import FORECASTERS, make_forecaster
from forecasters.report import run_report
from forecasters.walkforward import (
    ENSEMBLE,
    load_or_make_panel,
    panel_key,
    walk_forward,
    wide_panel,
)

__all__ = [
    "ENSEMBLE",
    "FORECASTERS",
    "METRIC_KEYS",
    "RETURN_COLUMN",
    "VOL_COLUMN",
    "ForecastConfig",
    "GateResult",
    "Forecaster",
    "LiveForecaster",
    "QuantileForecaster",
    "StackedEnsemble",
    "evaluate_gate",
    "evaluate_panel",
    "load_or_make_panel",
    "make_forecaster",
    "metrics_table",
    "panel_key",
    "pinball_loss",
    "quantile_column",
    "run_report",
    "walk_forward",
    "wide_column",
    "wide_panel",
    "write_metrics",
]
