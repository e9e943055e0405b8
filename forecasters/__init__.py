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
from forecasters.models import FORECASTERS, make_forecaster
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
    "RETURN_COLUMN",
    "VOL_COLUMN",
    "ForecastConfig",
    "Forecaster",
    "QuantileForecaster",
    "StackedEnsemble",
    "load_or_make_panel",
    "make_forecaster",
    "panel_key",
    "pinball_loss",
    "quantile_column",
    "walk_forward",
    "wide_column",
    "wide_panel",
]
