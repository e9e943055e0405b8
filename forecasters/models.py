"""Quantile forecasters: the learned members and the two references (random walk, GARCH)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Self

import numpy as np
import pandas as pd

from common.lazy import lazy_module
from common.units import PERCENT_PER_UNIT
from forecasters.base import (
    MIN_OBSERVED_ROWS,
    RETURN_COLUMN,
    VOL_COLUMN,
    QuantileForecaster,
    horizon_scale,
    repair_crossing,
)

# scipy.stats adds about 0.5 s to a process's start: loaded at its first use
stats = lazy_module("scipy.stats")


def _resolved_rows(y: np.ndarray) -> np.ndarray:
    """Rows whose labels are resolved for every horizon (multi-output members train on these)."""
    return np.isfinite(y).all(axis=1)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of ``values`` (n,) under each row of ``weights`` (m, n) -> (m, len(levels))."""
    order = np.argsort(values)
    sorted_values = values[order]
    cdf = np.cumsum(weights[:, order], axis=1)
    cdf /= cdf[:, -1:]
    out = np.empty((weights.shape[0], len(levels)))
    for k, level in enumerate(levels):
        idx = (cdf < level).sum(axis=1)
        out[:, k] = sorted_values[np.minimum(idx, len(values) - 1)]
    return out


class RandomForestQuantile(QuantileForecaster):
    """Quantile regression forest (Meinshausen 2006) on a multi-output scikit-learn forest.

    One forest predicts all horizons; the quantiles of a row are the quantiles of the training
    targets weighted by how often they share a leaf with the row (1 / leaf size per tree).
    """

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        # scikit-learn is heavy: imported only when this member is fitted
        from sklearn.ensemble import RandomForestRegressor

        p = self.params
        z = y / self._horizon_scale(X)
        rows = _resolved_rows(z)
        features, z = self._features(X, rows)[rows], z[rows]
        self._forest = RandomForestRegressor(
            n_estimators=p.n_estimators,
            min_samples_leaf=p.min_samples_leaf,
            max_features=p.max_features,
            max_depth=p.max_depth,
            max_samples=p.max_samples,
            random_state=self.seed,
            n_jobs=1,
        ).fit(features, z)
        self._train_leaves = self._forest.apply(features)
        self._train_z = z
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        leaves = self._forest.apply(self._features(X))
        n_trees = leaves.shape[1]
        weights = np.zeros((len(X), len(self._train_z)))
        for tree in range(n_trees):
            train_leaf = self._train_leaves[:, tree]
            counts = np.bincount(train_leaf)
            same = leaves[:, tree][:, None] == train_leaf[None, :]
            weights += same / counts[leaves[:, tree]][:, None]
        weights /= n_trees
        levels = np.asarray(self.levels)
        out = np.stack(
            [
                weighted_quantiles(self._train_z[:, j], weights, levels)
                for j in range(len(self.horizons))
            ],
            axis=1,
        )
        return repair_crossing(out * self._horizon_scale(X)[:, :, None])


class GradientBoostingQuantile(QuantileForecaster):
    """scikit-learn HistGradientBoostingRegressor with the quantile loss, per horizon and level."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        # scikit-learn is heavy: imported only when this member is fitted
        from sklearn.ensemble import HistGradientBoostingRegressor

        p = self.params
        z = y / self._horizon_scale(X)
        features = self._features(X, np.isfinite(z).any(axis=1))
        self._models = {}
        for j in range(len(self.horizons)):
            rows = np.isfinite(z[:, j])
            for k, level in enumerate(self.levels):
                self._models[j, k] = HistGradientBoostingRegressor(
                    loss="quantile",
                    quantile=level,
                    max_iter=p.max_iter,
                    learning_rate=p.learning_rate,
                    max_depth=p.max_depth,
                    min_samples_leaf=p.min_samples_leaf,
                    l2_regularization=p.l2_regularization,
                    max_bins=p.max_bins,
                    early_stopping=False,
                    random_state=self.seed,
                ).fit(features[rows], z[rows, j])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        features = self._features(X)
        out = np.empty((len(X), len(self.horizons), len(self.levels)))
        for (j, k), model in self._models.items():
            out[:, j, k] = model.predict(features)
        return repair_crossing(out * self._horizon_scale(X)[:, :, None])


class XGBoostQuantile(QuantileForecaster):
    """XGBoost ``reg:quantileerror``: one model per horizon predicts every level at once."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        # xgboost is heavy: imported only when this member is fitted
        import xgboost as xgb

        p = self.params
        z = y / self._horizon_scale(X)
        features = self._features(X, np.isfinite(z).any(axis=1))
        self._models = []
        for j in range(len(self.horizons)):
            rows = np.isfinite(z[:, j])
            model = xgb.XGBRegressor(
                objective="reg:quantileerror",
                quantile_alpha=np.asarray(self.levels),
                n_estimators=p.n_estimators,
                learning_rate=p.learning_rate,
                max_depth=p.max_depth,
                min_child_weight=p.min_child_weight,
                subsample=p.subsample,
                colsample_bytree=p.colsample_bytree,
                reg_lambda=p.reg_lambda,
                max_bin=p.max_bin,
                tree_method="hist",
                n_jobs=1,
                random_state=self.seed,
            )
            self._models.append(model.fit(features[rows], z[rows, j]))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        features = self._features(X)
        out = np.stack([m.predict(features).reshape(len(X), -1) for m in self._models], axis=1)
        return repair_crossing(out * self._horizon_scale(X)[:, :, None])


def _torch():
    """The ``torch`` module, imported on first use: only the neural members need it."""
    import torch  # optional heavy dependency (seconds to import): not loaded by `import forecasters`

    return torch


class TorchSequenceQuantile(QuantileForecaster):
    """Base of the PyTorch members: one network over the last ``window_bars`` rows of features.

    The network (``_network``) outputs every horizon and level; it is trained with the mean
    pinball loss on vol-scaled targets, with Adam in shuffled mini-batches, seeded and with
    deterministic kernels. Scalers are fitted on the training window only; missing features are 0
    after standardisation (the window mean). Subclasses only build the network.
    """

    @property
    def context_bars(self) -> int:  # type: ignore[override]
        return self.params.window_bars - 1

    def _network(self, n_features: int):
        """The torch module mapping (batch, window_bars, n_features) to (batch, H, Q)."""
        raise NotImplementedError  # pragma: no cover - interface

    def _standardise(self, X: pd.DataFrame) -> np.ndarray:
        values = (self._features(X) - self._mean) / self._std
        return np.nan_to_num(np.clip(values, -10.0, 10.0), nan=0.0)

    def _sequences(self, values: np.ndarray, ends: np.ndarray) -> np.ndarray:
        window = self.params.window_bars
        padded = np.concatenate([np.zeros((window - 1, values.shape[1])), values])
        idx = ends[:, None] + np.arange(window)[None, :]
        return padded[idx].astype(np.float32)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        torch = _torch()

        p = self.params
        z = y / self._horizon_scale(X)
        features = self._features(X, np.isfinite(z).all(axis=1))
        self._mean = np.nanmean(features, axis=0)
        self._std = np.nanstd(features, axis=0)
        self._mean = np.nan_to_num(self._mean)
        self._std = np.where(np.isfinite(self._std) & (self._std > 0), self._std, 1.0)
        values = self._standardise(X)
        rows = np.flatnonzero(np.isfinite(z).all(axis=1))
        if p.max_train_rows is not None:
            rows = rows[-p.max_train_rows :]
        inputs = torch.from_numpy(self._sequences(values, rows))
        targets = torch.from_numpy(z[rows].astype(np.float32))
        levels = torch.tensor(self.levels, dtype=torch.float32)

        with _deterministic_torch(p.num_threads):
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            self._net = self._network(values.shape[1])
            optimiser = torch.optim.Adam(
                self._net.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay
            )
            self._net.train()
            for _ in range(p.epochs):
                order = torch.randperm(len(rows), generator=generator)
                for start in range(0, len(rows), p.batch_size):
                    batch = order[start : start + p.batch_size]
                    pred = self._net(inputs[batch])
                    diff = targets[batch][:, :, None] - pred
                    loss = torch.maximum(levels * diff, (levels - 1.0) * diff).mean()
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
            self._net.eval()
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        torch = _torch()

        values = self._standardise(X)
        inputs = torch.from_numpy(self._sequences(values, np.arange(len(X))))
        with _deterministic_torch(self.params.num_threads), torch.no_grad():
            out = self._net(inputs).numpy().astype(np.float64)
        return repair_crossing(out * self._horizon_scale(X)[:, :, None])


class LSTMQuantile(TorchSequenceQuantile):
    """A small PyTorch LSTM over the window; its last output gives every horizon and level."""

    def _network(self, n_features: int):
        return _lstm_net(n_features, self.params, len(self.horizons), len(self.levels))


class AttentionQuantile(TorchSequenceQuantile):
    """Temporal self-attention over the window (optional member, ``forecast.attention``).

    Each bar is embedded linearly and a learned position embedding is added; ``num_layers``
    Transformer encoder layers (pre-norm, ``num_heads`` heads) let every bar attend to the whole
    window, and the last bar's encoding gives every horizon and level. Every bar of the window is
    known at its last bar, so attending in both directions sees nothing later.
    """

    def _network(self, n_features: int):
        return _attention_net(n_features, self.params, len(self.horizons), len(self.levels))


@contextmanager
def _deterministic_torch(num_threads: int):
    """Fixed thread count, deterministic kernels and no oneDNN (its kernels depend on the CPU's
    instruction set) inside the block; the previous settings are restored afterwards."""
    torch = _torch()

    previous = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.mkldnn.enabled,
    )
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])
        torch.backends.mkldnn.enabled = previous[2]


def _quantile_head(in_features: int, n_horizons: int, n_levels: int):
    """Linear layer to H * Q outputs that starts at the standard-normal quantiles (weights scaled
    by 0.1, biases at the normal quantiles of evenly spaced levels): early epochs are sensible."""
    torch = _torch()
    nn = torch.nn

    head = nn.Linear(in_features, n_horizons * n_levels)
    with torch.no_grad():
        head.weight.mul_(0.1)
        normal = torch.tensor(stats.norm.ppf(np.linspace(0, 1, n_levels + 2)[1:-1]))
        head.bias.copy_(normal.float().repeat(n_horizons))
    return head


def _lstm_net(n_features: int, p, n_horizons: int, n_levels: int):
    nn = _torch().nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(
                n_features,
                p.hidden_size,
                num_layers=p.num_layers,
                dropout=p.dropout if p.num_layers > 1 else 0.0,
                batch_first=True,
            )
            self.head = _quantile_head(p.hidden_size, n_horizons, n_levels)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[:, -1]).view(-1, n_horizons, n_levels)

    return Net()


POSITION_INIT_STD = 0.02
"""Standard deviation of the attention member's learned position embedding at initialisation."""


def _attention_net(n_features: int, p, n_horizons: int, n_levels: int):
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(n_features, p.d_model)
            self.position = nn.Parameter(
                POSITION_INIT_STD * torch.randn(1, p.window_bars, p.d_model)
            )
            layer = nn.TransformerEncoderLayer(
                p.d_model,
                p.num_heads,
                dim_feedforward=p.feedforward_size,
                dropout=p.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, p.num_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(p.d_model)
            self.head = _quantile_head(p.d_model, n_horizons, n_levels)

        def forward(self, x):
            encoded = self.encoder(self.embed(x) + self.position)
            return self.head(self.norm(encoded[:, -1])).view(-1, n_horizons, n_levels)

    return Net()


class RandomWalk(QuantileForecaster):
    """Reference: empirical quantiles of the past resolved h-bar log returns (no features)."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        lookback = self.params.lookback_bars if self.params is not None else None
        self._quantiles = np.empty((len(self.horizons), len(self.levels)))
        for j in range(len(self.horizons)):
            past = y[np.isfinite(y[:, j]), j]
            if lookback is not None:
                past = past[-lookback:]
            self._quantiles[j] = np.quantile(past, self.levels)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.broadcast_to(self._quantiles, (len(X), *self._quantiles.shape)).copy()


class VolScaledRandomWalk(QuantileForecaster):
    """Empirical quantiles of past returns divided by vol_per_bar * sqrt(h), rescaled by today's.

    With the frame's implied-volatility index as the vol this is the VIX-scaled interval.
    """

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        z = y / horizon_scale(X[VOL_COLUMN].to_numpy(float), self.horizons)
        lookback = self.params.lookback_bars
        self._quantiles = np.empty((len(self.horizons), len(self.levels)))
        for j in range(len(self.horizons)):
            past = z[np.isfinite(z[:, j]), j]
            if lookback is not None:
                past = past[-lookback:]
            self._quantiles[j] = np.quantile(past, self.levels)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        scale = horizon_scale(X[VOL_COLUMN].to_numpy(float), self.horizons)
        return self._quantiles[None, :, :] * scale[:, :, None]


class Garch(QuantileForecaster):
    """Reference: GARCH(1,1) with Student-t errors and a constant mean, fitted with ``arch``.

    Returns are rescaled to percent for ``arch``. Parameters are estimated at each refit; between
    refits the conditional variance is filtered forward with those parameters through the
    returns known at each date, so a forecast at t uses returns up to t only. The h-bar return
    has mean h * mu and variance the sum of the 1..h step variance forecasts; its quantiles are
    taken from the unit-variance Student-t with the fitted degrees of freedom (an approximation
    for h > 1, where the sum is closer to normal).
    """

    ASYMMETRY_LAGS = 0
    """``arch``'s ``o``: 0 for GARCH, 1 for GJR-GARCH (a larger response to falls)."""

    @property
    def context_bars(self) -> int | None:  # type: ignore[override]
        return self.params.lookback_bars

    def _returns_pct(self, X: pd.DataFrame) -> np.ndarray:
        return PERCENT_PER_UNIT * X[RETURN_COLUMN].to_numpy(float)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        # arch (GARCH fits, bootstraps) is heavy: imported only where it is used
        from arch import arch_model

        returns_pct = self._returns_pct(X)
        returns_pct = returns_pct[np.isfinite(returns_pct)]
        if self.params.lookback_bars is not None:
            returns_pct = returns_pct[-self.params.lookback_bars :]
        result = arch_model(
            returns_pct, mean="Constant", vol="GARCH", p=1, o=self.ASYMMETRY_LAGS, q=1,
            dist="t", rescale=False,
        ).fit(disp="off", show_warning=False)  # fmt: skip
        params = result.params
        self._mu = float(params["mu"])
        self._omega = float(params["omega"])
        self._alpha = float(params["alpha[1]"])
        self._gamma = float(params["gamma[1]"]) if self.ASYMMETRY_LAGS else 0.0
        self._beta = float(params["beta[1]"])
        self._nu = float(params["nu"])
        return self

    def _cumulative_variance_pct2(self, returns_pct: np.ndarray) -> np.ndarray:
        """(n, n_horizons) variance of the h-bar return in percent^2 known at each row.

        The variance is filtered through ``returns_pct`` from the variance of its first 75
        finite returns; a missing return counts as its expected shock (half of it a fall).
        """
        finite = returns_pct[np.isfinite(returns_pct)]
        persistence = self._alpha + 0.5 * self._gamma + self._beta
        variance = (
            float(np.var(finite[:75]))
            if len(finite) > 1
            else self._omega / max(1e-6, 1 - persistence)
        )
        next_variance = np.empty(len(returns_pct))
        for i, r in enumerate(returns_pct):
            if np.isfinite(r):
                shock2 = (r - self._mu) ** 2
                arch_weight = self._alpha + self._gamma * (r < self._mu)
            else:
                shock2 = variance
                arch_weight = self._alpha + 0.5 * self._gamma
            variance = self._omega + arch_weight * shock2 + self._beta * variance
            next_variance[i] = variance  # variance of the return over bar i+1, known at i
        horizon_max = max(self.horizons)
        step_variances = np.empty((len(returns_pct), horizon_max))
        step_variances[:, 0] = next_variance
        for k in range(1, horizon_max):
            step_variances[:, k] = self._omega + persistence * step_variances[:, k - 1]
        return np.cumsum(step_variances, axis=1)[:, np.asarray(self.horizons) - 1]

    def _standard_quantiles(self, cumulative: np.ndarray) -> np.ndarray:
        """(n_horizons, n_levels) quantiles of the h-bar return over its standard deviation."""
        t_scale = np.sqrt((self._nu - 2.0) / self._nu) if self._nu > 2 else 1.0
        z = stats.t.ppf(self.levels, self._nu) * t_scale
        return np.broadcast_to(z, (len(self.horizons), len(self.levels)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        cumulative = self._cumulative_variance_pct2(self._returns_pct(X))
        z = self._standard_quantiles(cumulative)
        mean = self._mu * np.asarray(self.horizons, float)
        quantiles_pct = mean[None, :, None] + np.sqrt(cumulative)[:, :, None] * z[None, :, :]
        return quantiles_pct / PERCENT_PER_UNIT


class Gjr(Garch):
    """Member: GJR-GARCH(1,1)-t (Glosten, Jagannathan and Runkle 1993) with filtered historical
    simulation quantiles.

    GARCH answers a fall and a rise of the same size alike; in equity indices a fall raises the
    next bar's variance more (the leverage effect), and this member's ``gamma`` carries that.
    The h-bar variance is the sum of the step forecasts (persistence alpha + gamma / 2 + beta);
    the quantiles are the empirical ones of the resolved training labels minus h * mu, divided
    by the model's h-bar standard deviation at their date (the latest ``quantile_lookback_bars``
    of the fitted window), so the skew and the fat tails of h-bar returns come from the data,
    not from a Student-t. Rows whose label is unresolved at the refit (NaN in ``y``) are never
    used.
    """

    ASYMMETRY_LAGS = 1

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        super().fit(X, y)
        rows = (
            slice(None)
            if self.params.lookback_bars is None
            else slice(-self.params.lookback_bars, None)
        )
        sd = np.sqrt(self._cumulative_variance_pct2(self._returns_pct(X.iloc[rows])))
        y_pct = PERCENT_PER_UNIT * y[rows]
        mean = self._mu * np.asarray(self.horizons, float)
        self._z = np.empty((len(self.horizons), len(self.levels)))
        for j in range(len(self.horizons)):
            resolved = np.isfinite(y_pct[:, j])
            z = (y_pct[resolved, j] - mean[j]) / sd[resolved, j]
            if self.params.quantile_lookback_bars is not None:
                z = z[-self.params.quantile_lookback_bars :]
            self._z[j] = np.quantile(z, self.levels)
        return self

    def _standard_quantiles(self, cumulative: np.ndarray) -> np.ndarray:
        return self._z


HAR_FEATURES = (
    "rv_ann_5b",
    "rv_ann_20b",
    "rv_ann_60b",
    "parkinson_vol_ann_5b",
    "parkinson_vol_ann_20b",
    "iv_index",
)
"""Volatility features of ``data.build_features`` the HAR member regresses on (logs), when present."""
HAR_LOG_FLOOR = 1e-6
"""Floor under a volatility before its log (a bar with no move has |return| = 0)."""


class HarVol(QuantileForecaster):
    """Volatility-scale member: HAR regression of realised variance (Corsi 2009), then quantiles.

    For each horizon h, log(sum of the next h squared one-bar log returns) is regressed by least
    squares on the logs of the daily |return|, the weekly, monthly and quarterly realised vols,
    the weekly and monthly range-based (Parkinson) vols and the implied-vol index where present
    (``HAR_FEATURES``; a feature with fewer than ``MIN_OBSERVED_ROWS`` values in the training
    window is left out of that fit, a missing value at prediction takes its training mean). The
    return over h bars is then sigma_h(t) * z, with z's quantiles the empirical quantiles of
    y / sigma_h over the latest ``quantile_lookback_bars`` resolved training rows, so any bias of
    the variance forecast is absorbed by the quantiles. Rows whose label is unresolved at the
    refit (NaN in ``y``) are never used.
    """

    def _regressors(self, X: pd.DataFrame) -> np.ndarray:
        columns = [np.abs(X[RETURN_COLUMN].to_numpy(float))]
        columns += [X[name].to_numpy(float) for name in self._har_columns]
        values = np.column_stack(columns)
        with np.errstate(invalid="ignore", divide="ignore"):
            logs = np.log(np.maximum(values, HAR_LOG_FLOOR))
        logs[~np.isfinite(values)] = np.nan
        return logs

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:
        p = self.params
        rows = slice(None) if p.lookback_bars is None else slice(-p.lookback_bars, None)
        X, y = X.iloc[rows], y[rows]
        resolved = np.isfinite(y).any(axis=1)
        self._har_columns = [
            name
            for name in HAR_FEATURES
            if name in X.columns
            and np.isfinite(X[name].to_numpy(float)[resolved]).sum() >= MIN_OBSERVED_ROWS
        ]
        logs = self._regressors(X)
        self._fill = np.nanmean(np.where(resolved[:, None], logs, np.nan), axis=0)
        logs = np.where(np.isfinite(logs), logs, self._fill)
        design = np.column_stack([np.ones(len(X)), logs])
        r2 = np.nan_to_num(X[RETURN_COLUMN].to_numpy(float) ** 2)
        cumulative = np.concatenate([[0.0], np.cumsum(r2)])
        n = len(X)
        self._coef = np.zeros((len(self.horizons), design.shape[1]))
        self._quantiles = np.zeros((len(self.horizons), len(self.levels)))
        for j, h in enumerate(self.horizons):
            ok = np.isfinite(y[:, j])
            ok[max(n - h, 0) :] = False  # the next h returns must lie inside X
            rows_ok = np.flatnonzero(ok)
            realised_var = cumulative[rows_ok + h + 1] - cumulative[rows_ok + 1]
            target = np.log(np.maximum(realised_var, HAR_LOG_FLOOR**2))
            self._coef[j] = np.linalg.lstsq(design[rows_ok], target, rcond=None)[0]
            sigma = np.exp(0.5 * (design[rows_ok] @ self._coef[j]))
            z = y[rows_ok, j] / sigma
            if p.quantile_lookback_bars is not None:
                z = z[-p.quantile_lookback_bars :]
            self._quantiles[j] = np.quantile(z, self.levels)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        logs = self._regressors(X)
        logs = np.where(np.isfinite(logs), logs, self._fill)
        design = np.column_stack([np.ones(len(X)), logs])
        sigma = np.exp(0.5 * (design @ self._coef.T))  # (n, H)
        return repair_crossing(sigma[:, :, None] * self._quantiles[None, :, :])


FORECASTERS: dict[str, type[QuantileForecaster]] = {
    "rf": RandomForestQuantile,
    "gb": GradientBoostingQuantile,
    "xgb": XGBoostQuantile,
    "lstm": LSTMQuantile,
    "attention": AttentionQuantile,
    "vol_rw": VolScaledRandomWalk,
    "har": HarVol,
    "random_walk": RandomWalk,
    "garch": Garch,
    "gjr": Gjr,
}
"""Registry of every model the walk-forward can run, by the name used in configs and panels."""


def make_forecaster(name: str, config, seed: int) -> QuantileForecaster:
    """Build the registered forecaster ``name`` with its parameters from a ForecastConfig."""
    if name not in FORECASTERS:
        raise KeyError(f"unknown forecaster {name!r}; registered: {sorted(FORECASTERS)}")
    return FORECASTERS[name](
        config.horizons,
        config.quantile_levels,
        params=getattr(config, name),
        seed=seed,
        scale_target=config.scale_target,
    )
