"""Market paths for training episodes, generated from the training segment only.

``train.paths.source`` (``config.PathsConfig``):

* ``real``: the real training segment (one path; random episode starts).
* ``bootstrap``: ``n_paths`` stationary block bootstraps (Politis & Romano 1994; geometric block
  lengths of mean ``block_bars``) of whole rows of the real training panel. A row is everything
  the environment reads at one close: the log return into it, the ATM implied vol, the rate, the
  features and the walk-forward forecasts that were out of sample at that row's date. Spot is
  rebuilt by chaining the sampled returns; the dates (hence expiries, session closes and the
  days-to-monthly-expiry observation) are the real training dates, in order.
* ``garch``: ``n_paths`` paths of a GJR-GARCH(1,1)-t model of the daily log return fitted on the
  training segment's returns, with an implied-vol process fitted on the training rows that have
  an ``iv_index`` (the realised-vol proxy the surface uses where none has): ``log iv[t] = a + b
  log sigma[t+1|t] + u[t]``, ``u`` AR(1), so that the variance risk premium (``a``, ``b``) is the
  training segment's. Features are computed from the generated prices (``data.build_features``)
  and the forecast panel is the fitted model's own conditional quantiles at each date: a model
  fitted on training rows only and fed the path up to t, so as out of sample as the real panel.
* ``mix``: the real path, ``n_paths // 2`` bootstraps and the rest GJR-GARCH paths.

Nothing reads a row after the training segment's end: the generators receive the training
panel (built from rows ``<= segments.train.end``) and the frame cut at that date
(``tests/test_paths.py`` perturbs every later row and finds bit-identical paths). Validation and
test environments are always built on the real history. Each training episode draws a path
(:class:`PathSwitchingEnv`, from its own ``np_random``).

Memory: a path's structure tables (every structure's unit at every bar and its quotes to expiry)
take about 13 MB per block of 64 daily bars as Python objects, so 16 paths of a decade held whole
took about 9 GB. :func:`path_envs` keeps :data:`RESIDENT_BLOCKS_PER_PATH` blocks of each path in
memory, the least recently used dropped first; a dropped block comes back from the table cache
(``env.table_cache_dir``: each path's blocks are stored under the hash of its own bars, so the
seeds of one ablation, and the ``mix`` paths equal to ``bootstrap`` ones, build them once), or
without one from compressed copies in memory (about 0.75 MB a block). Stepping is bit for bit
what keeping every block gives (``tests/test_paths.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np
import pandas as pd

from common.lazy import lazy_module
from common.units import PERCENT_PER_UNIT
from data import build_features
from data.calendar import TRADING_DAYS_PER_YEAR, bars_per_year
from envs.market import MarketPanel, build_market_panel
from envs.observations import DAYS_TO_EXPIRY_OBS, ObservationIndex
from envs.spy_options_env import SpyOptionsEnv
from envs.table_cache import MemoryUnitStore, TableCache
from forecasters.panel import ForecastPanel
from options.surface import atm_iv_series

stats = lazy_module("scipy.stats")  # 0.5 s to import; only the GARCH paths' quantiles use it

__all__ = ["PATH_SOURCES", "RESIDENT_BLOCKS_PER_PATH", "GjrGarchModel", "PathSwitchingEnv", "bootstrap_indices",
           "bootstrap_panel", "fit_gjr_garch", "garch_panel", "path_envs", "switching_envs",
           "training_panels"]

PATH_SOURCES = ("real", "bootstrap", "garch", "mix")
_WARMUP_BARS = 60  # generated GARCH frames start this many real dates before the segment
_MIN_IV_ROWS = 60  # training rows with an iv_index needed to fit the implied-vol process
# Blocks of structure tables (envs.portfolio.TABLE_BLOCK_BARS bars each) each path keeps in
# memory: the blocks its episodes are in now, with room for a few environments on one path.
RESIDENT_BLOCKS_PER_PATH = 4


# ---------------------------------------------------------------- block bootstrap
def bootstrap_indices(n_source: int, n_out: int, block_bars: float,
                      rng: np.random.Generator, first: int = 1) -> np.ndarray:
    """Source rows of a stationary bootstrap: a block starts at a uniform row of
    ``first..n_source-1`` and continues row by row, ending with probability ``1/block_bars``
    after each row (and at the source's end)."""
    if n_source - first < 1:
        raise ValueError(f"the training segment has {n_source} rows; too few to bootstrap")
    out = np.empty(n_out, dtype=np.int64)
    restart = rng.random(n_out) < 1.0 / block_bars
    starts = rng.integers(first, n_source, size=n_out)
    current = starts[0]
    for k in range(n_out):
        if k > 0:
            current = current + 1
            if restart[k] or current >= n_source:
                current = starts[k]
        out[k] = current
    return out


def bootstrap_panel(panel: MarketPanel, block_bars: float, rng: np.random.Generator
                    ) -> MarketPanel:
    """One stationary-bootstrap path of whole rows of ``panel`` (see the module docstring)."""
    n = len(panel)
    idx = bootstrap_indices(n, n, block_bars, rng)
    log_return = np.diff(np.log(panel.spot), prepend=np.nan)
    spot = panel.spot[0] * np.exp(np.concatenate([[0.0], np.cumsum(log_return[idx[1:]])]))
    market_obs = panel.market_obs[idx].copy()
    names = ObservationIndex(panel.market_obs_names)
    if DAYS_TO_EXPIRY_OBS in names:  # a property of the date, not of the row
        col = names.slot(DAYS_TO_EXPIRY_OBS)
        market_obs[:, col] = panel.market_obs[:, col]
    return replace(panel, spot=spot, atm_iv=panel.atm_iv[idx], rate=panel.rate[idx],
                   market_obs=market_obs, forecast_median=panel.forecast_median[idx],
                   forecast_width_75=panel.forecast_width_75[idx],
                   implied_move=panel.implied_move[idx])


# ---------------------------------------------------------------- GJR-GARCH paths
@dataclass(frozen=True)
class GjrGarchModel:
    """GJR-GARCH(1,1) with Student-t shocks (daily log returns, decimals) and an implied-vol
    process ``log iv = iv_intercept + iv_slope * log(annualised conditional vol) + u``,
    ``u[t] = iv_ar * u[t-1] + iv_noise_sd * e[t]``."""

    mu: float
    omega: float
    alpha: float
    gamma: float
    beta: float
    t_dof: float
    iv_intercept: float
    iv_slope: float
    iv_ar: float
    iv_noise_sd: float
    iv_rows: int  # training rows the implied-vol process was fitted on
    start_variance: float  # the training returns' sample variance: each path starts there

    def simulate(self, rng: np.random.Generator, n_bars: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(log_returns, next_bar_variance, iv_annualized)`` of one path of ``n_bars``."""
        shocks = rng.standard_t(self.t_dof, n_bars) * math.sqrt((self.t_dof - 2) / self.t_dof)
        noise = rng.standard_normal(n_bars)
        ret = np.empty(n_bars)
        nxt = np.empty(n_bars)
        var = self.start_variance
        for k in range(n_bars):
            eps = math.sqrt(var) * shocks[k]
            ret[k] = self.mu + eps
            var = self.omega + (self.alpha + self.gamma * (eps < 0)) * eps * eps + self.beta * var
            nxt[k] = var
        u = np.empty(n_bars)
        prev = 0.0
        for k in range(n_bars):
            prev = self.iv_ar * prev + self.iv_noise_sd * noise[k]
            u[k] = prev
        log_vol = 0.5 * np.log(nxt * TRADING_DAYS_PER_YEAR)
        return ret, nxt, np.exp(self.iv_intercept + self.iv_slope * log_vol + u)


def fit_gjr_garch(train_frame: pd.DataFrame, atm_iv: pd.Series) -> GjrGarchModel:
    """Fit the path model on the training rows only (``train_frame`` ends at the training
    segment's end; ``atm_iv`` the surface's ATM vol on those rows, used where the frame has no
    ``iv_index``)."""
    # arch (GARCH fits, bootstraps) is heavy: imported only where it is used
    from arch import arch_model

    close = train_frame["close"].to_numpy(dtype=float)
    log_ret = np.diff(np.log(close))
    fit = arch_model(PERCENT_PER_UNIT * log_ret, mean="Constant", vol="GARCH", p=1, o=1, q=1,
                     dist="t", rescale=False).fit(disp="off")
    p = fit.params
    cond_var = (fit.conditional_volatility / PERCENT_PER_UNIT) ** 2
    mu, omega = p["mu"] / PERCENT_PER_UNIT, p["omega"] / PERCENT_PER_UNIT ** 2
    alpha, gamma, beta = p["alpha[1]"], p["gamma[1]"], p["beta[1]"]
    eps = log_ret - mu
    # The variance of bar t+1, known at the close of t (rows 1.. of the frame).
    nxt = omega + (alpha + gamma * (eps < 0)) * eps ** 2 + beta * cond_var
    log_vol = 0.5 * np.log(nxt * TRADING_DAYS_PER_YEAR)
    if "iv_index" in train_frame.columns and train_frame["iv_index"].iloc[1:].notna().sum() >= \
            _MIN_IV_ROWS:
        iv = train_frame["iv_index"].to_numpy(dtype=float)[1:]
    else:
        iv = atm_iv.reindex(train_frame.index).to_numpy(dtype=float)[1:]
    ok = np.isfinite(iv) & (iv > 0) & np.isfinite(log_vol)
    if ok.sum() < _MIN_IV_ROWS:
        raise ValueError(f"training segment has {int(ok.sum())} rows with an implied vol; "
                         f"the GJR-GARCH path model needs {_MIN_IV_ROWS}")
    slope, intercept = np.polyfit(log_vol[ok], np.log(iv[ok]), 1)
    resid = np.log(iv[ok]) - (intercept + slope * log_vol[ok])
    ar = float(np.clip(np.corrcoef(resid[:-1], resid[1:])[0, 1], 0.0, 0.999))
    noise_sd = float(np.std(resid) * math.sqrt(1 - ar ** 2))
    return GjrGarchModel(mu, omega, alpha, gamma, beta, float(p["nu"]), float(intercept),
                         float(slope), ar, noise_sd, int(ok.sum()), float(np.var(log_ret)))


def _garch_forecasts(model: GjrGarchModel, next_var: np.ndarray, dates, horizons, levels):
    """The model's own conditional quantiles of log(S[t+h]/S[t]) at each date (Gaussian with
    the expected h-bar variance under the model's mean reversion)."""
    persistence = min(model.alpha + 0.5 * model.gamma + model.beta, 1.0)
    if persistence > 0.999:  # (nearly) integrated: no reversion over a few bars
        persistence = 1.0
    long_var = model.omega / (1 - persistence) if persistence < 1 else 0.0
    z = stats.norm.ppf(np.asarray(levels, dtype=float))
    values = np.empty((len(dates), len(horizons), len(levels)))
    for j, h in enumerate(horizons):
        steps = np.arange(h)
        path_var = long_var + (next_var[:, None] - long_var) * persistence ** steps[None, :]
        sd = np.sqrt(path_var.sum(axis=1))
        values[:, j, :] = (h * model.mu + z[None, :] * sd[:, None])
    return ForecastPanel(pd.DatetimeIndex(dates, name="date"), tuple(horizons), tuple(levels),
                         values, "ensemble")


def garch_panel(model: GjrGarchModel, real: MarketPanel, dates: pd.DatetimeIndex,
                rng: np.random.Generator, cfg) -> MarketPanel:
    """One GJR-GARCH path on ``dates`` (warm-up dates first) as a training panel."""
    n = len(dates)
    ret, nxt, iv = model.simulate(rng, n)
    level = real.spot[0] / cfg.env.underlying_price_scale
    close = level * np.exp(np.cumsum(ret) - ret[0])
    open_ = np.concatenate([[close[0]], close[:-1]])
    bar_sd = np.sqrt(np.concatenate([[nxt[0]], nxt[:-1]]))
    wiggle = np.abs(rng.standard_normal((2, n))) * 0.5 * bar_sd
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * np.exp(wiggle[0]),
                          "low": np.minimum(open_, close) * np.exp(-wiggle[1]), "close": close,
                          "volume": np.full(n, 1e9), "iv_index": iv,
                          "rate": np.interp(np.arange(n), np.linspace(0, n - 1, len(real)),
                                            real.rate)}, index=dates)
    frame.attrs.update(source="gjr_garch_path", symbol=real.symbol, interval="1d")
    forecasts = _garch_forecasts(model, nxt, dates, cfg.forecast.horizons,
                                 cfg.forecast.quantile_levels)
    return build_market_panel(frame, build_features(frame), forecasts, real.dates[0],
                              real.dates[-1], cfg.options.surface,
                              cfg.env.underlying_price_scale)


# ---------------------------------------------------------------- all training paths
def training_panels(cfg, inputs, real: MarketPanel) -> list[MarketPanel]:
    """The training paths ``cfg.train.paths`` asks for (``real``: the real training panel)."""
    paths = cfg.train.paths
    if paths.source == "real":
        return [real]
    rng = np.random.default_rng(paths.seed)
    n_boot = {"bootstrap": paths.n_paths, "garch": 0, "mix": paths.n_paths // 2}[paths.source]
    n_garch = paths.n_paths - n_boot if paths.source != "bootstrap" else 0
    panels = [real] if paths.source == "mix" else []
    panels += [bootstrap_panel(real, paths.block_bars, rng) for _ in range(n_boot)]
    if n_garch:
        end = pd.Timestamp(real.dates[-1])
        train_frame = inputs.frame.loc[:end]  # nothing after the training segment's end
        train_frame = train_frame.loc[str(cfg.segments.train.start):]
        atm = atm_iv_series(inputs.frame.loc[:end], cfg.options.surface,
                            bars_per_year=bars_per_year(inputs.frame.index))
        model = fit_gjr_garch(train_frame, atm)
        before = inputs.frame.index[inputs.frame.index < real.dates[0]][-_WARMUP_BARS:]
        dates = before.append(real.dates)
        panels += [garch_panel(model, real, dates, rng, cfg) for _ in range(n_garch)]
    return panels


class PathSwitchingEnv(gym.Env):
    """Several environments on different market paths behind one: each ``reset`` draws a path
    uniformly (from this env's ``np_random``) and resets it with a seed drawn from the same
    generator, so that one seed and the actions replay an episode exactly."""

    metadata = {"render_modes": []}

    def __init__(self, envs: list) -> None:
        super().__init__()
        if not envs:
            raise ValueError("PathSwitchingEnv needs at least one environment")
        self.envs = list(envs)
        self.active = self.envs[0]
        self.observation_space = self.active.observation_space
        self.action_space = self.active.action_space
        self.action_names = self.active.action_names
        self.observation_names = self.active.observation_names
        self.path_index = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.path_index = int(self.np_random.integers(len(self.envs)))
        self.active = self.envs[self.path_index]
        inner_seed = int(self.np_random.integers(2**31 - 1))
        return self.active.reset(seed=inner_seed, options=options)

    def step(self, action):
        return self.active.step(action)

    def action_masks(self) -> np.ndarray:
        return self.active.action_masks()


def path_envs(cfg, panels: list[MarketPanel], n_envs: int,
              resident_blocks: int | None = RESIDENT_BLOCKS_PER_PATH) -> list[PathSwitchingEnv]:
    """``n_envs`` training environments over ``panels``; the environments of one path share its
    per-bar structure tables, of which at most ``resident_blocks`` blocks stay in memory (None:
    all); the others are stored (see the module docstring)."""
    cache = TableCache(cfg.env.table_cache_dir) if cfg.env.table_cache_dir else None
    bases = [SpyOptionsEnv(panel, cfg.env, cfg.options.surface, cfg.options.costs,
                           cfg.options.margin, mode="train", table_cache=cache,
                           exercise=cfg.options.exercise)
             for panel in panels]
    if resident_blocks is not None:
        for base in bases:
            if base.tables.store is None:
                base.tables.attach_store(MemoryUnitStore())
            base.tables.keep_blocks(resident_blocks)
    return switching_envs(cfg, bases, n_envs)


def switching_envs(cfg, bases: list, n_envs: int) -> list[PathSwitchingEnv]:
    """``n_envs`` path-switching environments over the paths of ``bases`` (environments made on
    one panel each): the first uses ``bases`` themselves, the others share their tables."""
    def share(base):
        return SpyOptionsEnv(base.panel, cfg.env, cfg.options.surface, cfg.options.costs,
                             cfg.options.margin, mode="train", unit_tables=base.tables,
                             exercise=cfg.options.exercise)

    return [PathSwitchingEnv([base if rank == 0 else share(base) for base in bases])
            for rank in range(n_envs)]
