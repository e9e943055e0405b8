"""Typed configuration of the forecasters stage (the ``forecast:`` section of an experiment YAML)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.paths import user_cache_root

MemberName = Literal["rf", "gb", "xgb", "lstm", "attention", "vol_rw", "har", "gjr"]
ReferenceName = Literal["random_walk", "garch"]
TUNABLE = ("rf", "gb", "xgb", "lstm", "attention")
OPTIONAL_MEMBERS = ("attention", "gjr")
"""Members added after forecast panels were first cached: their parameters enter the cache key
only when they are selected, so configs that leave them out keep their keys."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RFParams(_Section):
    """Quantile regression forest (scikit-learn RandomForest, quantiles from leaf co-membership)."""

    n_estimators: int = Field(100, ge=1, description="number of trees")
    min_samples_leaf: int = Field(40, ge=1, description="minimum training rows per leaf")
    max_features: float = Field(0.5, gt=0, le=1, description="share of features tried per split")
    max_depth: int | None = Field(None, ge=1, description="maximum tree depth (None: unlimited)")
    max_samples: float | None = Field(
        0.5, gt=0, le=1, description="bootstrap share of rows per tree"
    )


class GBParams(_Section):
    """scikit-learn HistGradientBoostingRegressor with quantile loss, one model per horizon and level."""

    max_iter: int = Field(100, ge=1, description="boosting iterations")
    learning_rate: float = Field(0.05, gt=0, description="shrinkage")
    max_depth: int | None = Field(3, ge=1, description="maximum tree depth")
    min_samples_leaf: int = Field(50, ge=1, description="minimum rows per leaf")
    l2_regularization: float = Field(1.0, ge=0, description="L2 penalty on leaf values")
    max_bins: int = Field(64, ge=2, le=255, description="histogram bins per feature")


class XGBParams(_Section):
    """XGBoost ``reg:quantileerror`` with all quantile levels in one model per horizon."""

    n_estimators: int = Field(100, ge=1, description="boosting rounds")
    learning_rate: float = Field(0.05, gt=0, description="shrinkage (eta)")
    max_depth: int = Field(3, ge=1, description="maximum tree depth")
    min_child_weight: float = Field(20.0, ge=0, description="minimum hessian sum per child")
    subsample: float = Field(0.8, gt=0, le=1, description="row share per round")
    colsample_bytree: float = Field(0.8, gt=0, le=1, description="feature share per tree")
    reg_lambda: float = Field(1.0, ge=0, description="L2 penalty on leaf weights")
    max_bin: int = Field(64, ge=2, description="histogram bins per feature")


class _SequenceParams(_Section):
    """What every PyTorch sequence member shares: its input windows and its training loop."""

    window_bars: int = Field(20, ge=1, description="bars of past features in one input sequence")
    epochs: int = Field(15, ge=1, description="passes over the training rows per refit")
    batch_size: int = Field(256, ge=1, description="rows per gradient step")
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="Adam weight decay")
    max_train_rows: int | None = Field(2520, ge=1, description="train on at most the latest N rows")
    num_threads: int = Field(1, ge=1, description="torch.set_num_threads inside the fit")


class LSTMParams(_SequenceParams):
    """Small PyTorch LSTM trained on CPU with the pinball loss over all horizons and levels."""

    hidden_size: int = Field(16, ge=1, description="LSTM hidden units")
    num_layers: int = Field(1, ge=1, description="stacked LSTM layers")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout between layers")


class AttentionParams(_SequenceParams):
    """Small temporal self-attention (Transformer encoder) trained like the LSTM (optional member).

    Each bar of the window is embedded linearly, a learned position embedding is added, and the
    last bar's encoding after ``num_layers`` encoder layers gives every horizon and level.
    """

    epochs: int = Field(8, ge=1, description="passes over the training rows per refit")
    d_model: int = Field(16, ge=1, description="width of the bar embedding and attention")
    num_heads: int = Field(2, ge=1, description="attention heads (must divide d_model)")
    num_layers: int = Field(1, ge=1, description="stacked encoder layers")
    feedforward_size: int = Field(32, ge=1, description="hidden units of each layer's MLP")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside the encoder layers")

    @model_validator(mode="after")
    def _check(self) -> AttentionParams:
        if self.d_model % self.num_heads:
            raise ValueError(
                f"forecast.attention.num_heads ({self.num_heads}) must divide "
                f"forecast.attention.d_model ({self.d_model})"
            )
        return self


class RandomWalkParams(_Section):
    """Random walk with empirical quantiles of past h-bar log returns."""

    lookback_bars: int | None = Field(
        None, ge=2, description="use the latest N resolved returns (None: whole window)"
    )


class VolRandomWalkParams(_Section):
    """Random walk whose empirical quantiles are taken of vol-scaled returns and rescaled at t."""

    lookback_bars: int | None = Field(
        1260, ge=2, description="use the latest N resolved scaled returns"
    )


class HarParams(_Section):
    """HAR regression of realised variance on realised, range-based and implied vol (Corsi 2009)."""

    lookback_bars: int | None = Field(
        2520, ge=100, description="fit on the latest N bars (None: whole window)"
    )
    quantile_lookback_bars: int | None = Field(
        1260, ge=20, description="quantiles of the latest N resolved standardised returns"
    )


class GarchParams(_Section):
    """GARCH(1,1) with Student-t errors, fitted with ``arch`` on returns in percent."""

    lookback_bars: int | None = Field(
        2520, ge=100, description="fit on the latest N bars (None: whole window)"
    )


class GjrParams(_Section):
    """GJR-GARCH(1,1)-t member with filtered historical simulation quantiles."""

    lookback_bars: int | None = Field(
        2520, ge=100, description="fit on the latest N bars (None: whole window)"
    )
    quantile_lookback_bars: int | None = Field(
        1260, ge=20, description="quantiles of the latest N resolved standardised h-bar returns"
    )


class VolScaleConfig(_Section):
    """Per-bar volatility used to scale targets (and conformal scores) to order one."""

    use_iv: bool = Field(True, description="use the frame's iv_index (annualised) where present")
    ewma_halflife_bars: int = Field(
        20, ge=1, description="half-life of the EWMA realised-vol fallback"
    )
    floor_per_bar: float = Field(
        1e-4, gt=0, description="lower bound of the per-bar vol (log-return units)"
    )


class EnsembleConfig(_Section):
    """Stacked ensemble: non-negative weights summing to one per horizon and quantile level."""

    enabled: bool = Field(True, description="build the 'ensemble' model")
    include_references: bool = Field(True, description="also stack random_walk and garch forecasts")
    lookback_forecasts: int = Field(
        750, ge=10, description="fit weights on the latest N resolved OOS forecasts"
    )
    min_forecasts: int = Field(
        120, ge=1, description="equal weights until this many resolved OOS forecasts"
    )


class ConformalConfig(_Section):
    """Conformal PID calibration of the intervals on past out-of-sample scores (scaled by vol).

    The threshold is a rolling conformal quantile of the latest ``window_forecasts`` resolved
    scores plus a quantile-tracking term with step eta (``forecasters.conformal``). eta is chosen
    per model, horizon and interval on the forecasts dated in [select_start, select_end] whose
    outcomes are known by select_end; without ``select_start``, on all the walk-forward history
    up to select_end (a window that spans calm and turbulent periods). Set select_end to the end
    of the validation segment, never inside the test one. Without either, ``default_step`` is
    used. The step is a hyper-parameter chosen on that window like the tuned member parameters:
    forecasts dated before select_end use a step chosen with later data.
    """

    enabled: bool = Field(True, description="calibrate interval quantiles of members and ensemble")
    window_forecasts: int = Field(
        250, ge=10, description="latest N resolved OOS forecasts used for the scorecaster"
    )
    min_forecasts: int = Field(
        60, ge=1, description="no adjustment until this many resolved scores exist"
    )
    calibrate_references: bool = Field(False, description="also calibrate random_walk and garch")
    default_step: float = Field(
        0.02, ge=0, description="tracking step (vol units per bar) when no selection window"
    )
    step_grid: list[float] = Field(
        [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
        min_length=1,
        description="candidate tracking steps tried on the selection window",
    )
    select_start: dt.date | None = Field(
        None, description="first date of the step selection (None: the first forecast)"
    )
    select_end: dt.date | None = Field(None, description="last date of the step selection")
    coverage_block_forecasts: int | None = Field(
        63,
        ge=5,
        description="selection coverage error: mean |coverage - nominal| over blocks of N "
        "forecasts (None: over the whole window)",
    )
    coverage_tolerance: float = Field(
        0.005,
        ge=0,
        lt=1,
        description="steps whose coverage error is this close to the best compete on score",
    )

    @model_validator(mode="after")
    def _check(self) -> ConformalConfig:
        if self.select_start is not None and self.select_end is None:
            raise ValueError("forecast.conformal.select_start needs select_end")
        if self.select_start is not None and self.select_end < self.select_start:
            raise ValueError("forecast.conformal.select_end is before select_start")
        if any(step < 0 for step in self.step_grid):
            raise ValueError(f"forecast.conformal.step_grid must be >= 0, got {self.step_grid}")
        return self


class GateConfig(_Section):
    """The seed's tolerance gate: trading proceeds only on forecasts that meet these thresholds.

    Checked on the forecasts of ``model`` dated in the training and validation segments (never
    the test one) by ``train.py``, and on the evaluated segment by ``python -m forecasters``.
    Off unless ``enabled``; the shipped configs enable it.
    """

    enabled: bool = Field(False, description="check the gate (train.py refuses a failing panel)")
    model: str = Field("ensemble", description="the panel's model that is checked")
    horizons: list[int] = Field(
        [1, 2, 3, 4], min_length=1, description="horizons in bars checked (daily: 24h..96h)"
    )
    hit_tolerance_pct: float = Field(
        2.0, gt=0, description="a median forecast within +/- this % of the price is a hit"
    )
    min_hit_share: float = Field(
        0.5, ge=0, le=1, description="lowest share of hits allowed at each horizon"
    )
    coverage_nominal: float = Field(0.75, gt=0, lt=1, description="the interval checked")
    coverage_min: float = Field(0.70, ge=0, le=1, description="lowest realised coverage allowed")
    coverage_max: float = Field(0.80, ge=0, le=1, description="highest realised coverage allowed")

    @model_validator(mode="after")
    def _check(self) -> GateConfig:
        if not self.coverage_min <= self.coverage_nominal <= self.coverage_max:
            raise ValueError(
                "forecast.gate: expected coverage_min <= coverage_nominal <= coverage_max, got "
                f"{self.coverage_min}, {self.coverage_nominal}, {self.coverage_max}"
            )
        return self


class TuneConfig(_Section):
    """Optuna search over a member's main hyper-parameters, scored by walk-forward pinball loss."""

    storage: str = Field(
        default_factory=lambda: f"sqlite:///{user_cache_root() / 'optuna' / 'forecasters.db'}",
        description="Optuna storage URL (a relative sqlite path resolves from the config file)",
    )
    study_prefix: str = Field("forecasters", description="study name is '<prefix>-<member>'")
    n_trials: int = Field(20, ge=1, description="trials run by one worker process")
    timeout_s: float | None = Field(None, gt=0, description="stop a worker after this many seconds")
    best_params_path: str = Field(
        "configs/forecast_best_params.yaml", description="where best params are written"
    )


class ForecastConfig(_Section):
    """Everything that makes a forecast panel; hashing it (with the data) names the cached panel."""

    horizons: list[int] = Field(
        [1, 2, 3, 4, 5], min_length=1, description="forecast horizons in bars"
    )
    horizons_hours: list[float] | None = Field(
        None,
        min_length=1,
        description="horizons in hours (24h = one session ahead); replace 'horizons' on each frame",
    )
    quantile_levels: list[float] = Field(
        [0.05, 0.125, 0.5, 0.875, 0.95],
        min_length=1,
        description="quantile levels; symmetric pairs (0.125, 0.875) and (0.05, 0.95) give the 75% and 90% intervals",
    )
    members: list[MemberName] = Field(
        ["rf", "gb", "xgb", "lstm", "vol_rw"],
        description="learned members (optional ones, such as attention, only when listed)",
    )
    references: list[ReferenceName] = Field(
        ["random_walk", "garch"], description="reference models"
    )
    window: Literal["expanding", "rolling"] = Field("expanding", description="training window type")
    window_bars: int = Field(
        2520, ge=50, description="rolling window length in bars (rolling only)"
    )
    min_train_bars: int = Field(500, ge=20, description="bars before the first refit")
    refit_every_bars: int = Field(63, ge=1, description="refit all members every N bars")
    embargo_bars: int = Field(0, ge=0, description="extra bars dropped after the h-bar purge")
    first_forecast_date: dt.date | dt.datetime | None = Field(
        None, description="first date with a forecast (None: after min_train_bars)"
    )
    seed: int = Field(0, description="base seed; each refit and member derives its own")
    n_jobs: int = Field(2, ge=1, description="joblib processes for member fits")
    vol: VolScaleConfig = VolScaleConfig()
    scale_target: bool = Field(
        True, description="learned members predict return / (vol_per_bar * sqrt(h))"
    )
    ensemble: EnsembleConfig = EnsembleConfig()
    conformal: ConformalConfig = ConformalConfig()
    gate: GateConfig = GateConfig()
    rf: RFParams = RFParams()
    gb: GBParams = GBParams()
    xgb: XGBParams = XGBParams()
    lstm: LSTMParams = LSTMParams()
    attention: AttentionParams = AttentionParams()
    vol_rw: VolRandomWalkParams = VolRandomWalkParams()
    har: HarParams = HarParams()
    random_walk: RandomWalkParams = RandomWalkParams()
    garch: GarchParams = GarchParams()
    gjr: GjrParams = GjrParams()
    tune: TuneConfig = TuneConfig()
    cache_dir: str = Field(
        default_factory=lambda: str(user_cache_root() / "forecasts"),
        description="where cached panels are written (relative: from the config file's folder)",
    )
    tuned_params_path: str | None = Field(
        None, description="YAML written by the Optuna search; its member parameters override these"
    )

    def resolved(self) -> ForecastConfig:
        """This config with the tuned member parameters of ``tuned_params_path`` merged in."""
        if self.tuned_params_path is None:
            return self

        path = Path(self.tuned_params_path)
        if not path.is_file():
            raise FileNotFoundError(f"forecast.tuned_params_path: no such file {path}")
        tuned = (yaml.safe_load(path.read_text()) or {}).get("forecast", {})
        update = {}
        for member, params in tuned.items():
            if member not in TUNABLE:
                raise ValueError(f"{path}: unknown member {member!r}; expected one of {TUNABLE}")
            current = getattr(self, member).model_dump()
            update[member] = type(getattr(self, member))(**{**current, **params})
        return self.model_copy(update={**update, "tuned_params_path": None})

    @model_validator(mode="after")
    def _check(self) -> ForecastConfig:
        if sorted(set(self.horizons)) != list(self.horizons) or self.horizons[0] < 1:
            raise ValueError(
                f"forecast.horizons must be increasing positive integers, got {self.horizons}"
            )
        hours = self.horizons_hours
        if hours is not None and (sorted(set(hours)) != list(hours) or hours[0] <= 0):
            raise ValueError(f"forecast.horizons_hours must be increasing and > 0, got {hours}")
        levels = self.quantile_levels
        if sorted(set(levels)) != list(levels) or not all(0 < q < 1 for q in levels):
            raise ValueError(
                f"forecast.quantile_levels must be increasing and in (0, 1), got {levels}"
            )
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"forecast.members has duplicates: {self.members}")
        gate_horizons = set(self.gate.horizons)
        if (
            self.gate.enabled
            and self.horizons_hours is None
            and not gate_horizons <= set(self.horizons)
        ):
            raise ValueError(
                f"forecast.gate.horizons {self.gate.horizons} must be among forecast.horizons "
                f"{self.horizons}"
            )
        if not self.members and not self.references:
            raise ValueError("forecast.members and forecast.references are both empty")
        return self
