"""Implied volatility for bars that have none: named, documented proxies.

A market frame's ``iv_index`` (a 30-day implied volatility such as VIX/100) prices every option.
Where it is missing (a CSV without an ``iv`` column, the embedded history before 2014, a gap), the
surface config's ``iv_proxy`` (``options.surface.iv_proxy`` in an experiment config) says what
stands in for it; every run states the proxy it used (run log, ``provenance.json``,
``train_summary.json``, the evaluation's ``metrics.json`` and ``report.md``):

``garch_vrp`` (default)
    A GJR-GARCH(1,1) forecast of the average variance over the next 30 calendar days, fitted
    causally on the frame's own log returns (expanding window from the frame's first bar, refitted
    every quarter of a year of bars, the variance filtered bar by bar in between, so the value at t
    uses closes at or before t only), times :data:`GARCH_VRP_RATIO`: the geometric mean of VIX
    over that forecast on the embedded S&P 500 2014-2015, where both exist (ending before any
    shipped config's validation segment). Implied vol sits
    above expected realised vol (the variance risk premium; Carr & Wu 2009, Bollerslev, Tauchen &
    Zhou 2009); the GARCH forecast mean-reverts to the long-run level, so a quiet month is not
    read as a 10% implied vol. Needs two years of bars before the first bar it prices.
    ``python -m options.iv_proxy_fit`` recomputes the ratio and its out-of-sample errors.
``realized_ratio``
    The earlier proxy: trailing close-to-close realised vol over ``realized_window_bars`` times
    the geometric mean of ``iv_index`` / realised vol over the earlier bars that have both (once
    ``min_calibration_overlap_bars`` exist), else times ``fallback_iv_to_realized_ratio`` (1.2).
    On a frame with no implied vol at all it is realised vol x 1.2, which underprices quiet
    markets (the issue that introduced this module: a CSV without ``iv`` bought strangles at 10%
    vol while the index's implied vol was 15-17%).
``none``
    No proxy: a frame without any implied vol is refused, and a run whose segments reach bars
    without it is refused (UserInputError naming the key and the data).

The ratio was fitted on the S&P 500 and its VIX; another underlying's premium differs, so give its
implied vol where it exists. On intraday frames the GARCH runs on bar returns (no intraday
seasonality, overnight gaps as ordinary bars): a rough level, stated as such.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.units import PERCENT_PER_UNIT, TRADING_DAYS_PER_YEAR, VOL_POINTS_PER_UNIT
from options.pricing import DAYS_PER_YEAR

if TYPE_CHECKING:  # annotation only: options.surface imports this module
    from options.surface import SurfaceConfig

__all__ = [
    "DEFAULT_IV_PROXY",
    "GARCH_SPEC",
    "GARCH_VRP_FIT",
    "GARCH_VRP_RATIO",
    "IV_PROXY_DESCRIPTIONS",
    "IV_PROXY_KEY",
    "GarchSpec",
    "IvProxyName",
    "describe_iv_proxy",
    "fit_report",
    "fit_vrp_ratio",
    "garch_vol_forecast",
    "garch_vrp_proxy",
    "implied_vol_level",
    "realized_ratio_proxy",
    "realized_vol_series",
]

IvProxyName = Literal["garch_vrp", "realized_ratio", "none"]
DEFAULT_IV_PROXY: IvProxyName = "garch_vrp"
IV_PROXY_KEY = "options.surface.iv_proxy"
"""The config key that chooses the proxy (a field of :class:`options.surface.SurfaceConfig`)."""



@dataclass(frozen=True)
class GarchSpec:
    """The GJR-GARCH(1,1) behind ``garch_vrp`` (Glosten, Jagannathan & Runkle 1993).

    Constant mean, normal quasi-likelihood (``arch.arch_model(mean="Constant", vol="GARCH", p=1,
    o=1, q=1, dist="normal")``): the leverage term lets a fall raise the variance more than a
    rise, as the VIX does. Chosen before any comparison with the VIX, not tuned on it.
    """

    horizon_calendar_days: float = 30.0  # the VIX's horizon
    min_history_years: float = 2.0  # bars before the first fit, in years of the frame's bars
    refit_every_years: float = 0.25  # a new fit every quarter of a year of bars

    def bars(self, bars_per_year: float) -> tuple[int, int, int]:
        """(horizon, minimum history, refit interval) in bars of a frame."""
        horizon = max(1, round(self.horizon_calendar_days / DAYS_PER_YEAR * bars_per_year))
        return (horizon, max(100, round(self.min_history_years * bars_per_year)),
                max(1, round(self.refit_every_years * bars_per_year)))


GARCH_SPEC = GarchSpec()

GARCH_VRP_RATIO = 1.0784
"""Implied over GJR-GARCH 30-day vol: geometric mean of VIX/100 over :func:`garch_vol_forecast`
on the embedded S&P 500, 2014-01-03..2015-12-31 (see :data:`GARCH_VRP_FIT`): the training years
of ``configs/default.yaml``, so no shipped config's validation or test bar informs it."""

GARCH_VRP_FIT = {
    "command": "python -m options.iv_proxy_fit",
    "data": "embedded: S&P 500 closes 1999-2018 and CBOE VIX close (arch.data sp500, vix)",
    "fitted_on": "2014-01-03..2015-12-31 (every bar with both VIX and a GARCH forecast; ends "
                 "before any shipped config's validation segment)",
    "bars": 503,
    "statistic": "exp(mean(log(VIX/100 / GJR-GARCH 30-day vol forecast)))",
}
"""Provenance of :data:`GARCH_VRP_RATIO` (``python -m options.iv_proxy_fit`` prints it)."""

IV_PROXY_DESCRIPTIONS: dict[str, str] = {
    "garch_vrp": "GJR-GARCH(1,1) 30-day vol forecast, fitted causally with quarterly refits, "
                 "x {ratio:.4f} = VIX/GARCH geometric mean on the embedded S&P 500 2014-2015",
    "realized_ratio": "trailing {window}-bar realised vol x the geometric mean of iv_index / "
                      "realised vol over earlier bars with both (>= {overlap}), else x {fallback}",
    "none": "no proxy: bars without iv_index are refused",
}


# --------------------------------------------------------------------------- realised vol
def realized_vol_series(close: pd.Series, window_bars: int, bars_per_year: float) -> pd.Series:
    """Trailing close-to-close realised vol, annualised; at t it uses closes up to t only."""
    log_ret = np.log(close.astype(float)).diff()
    return log_ret.rolling(window_bars, min_periods=window_bars).std(ddof=1) * math.sqrt(
        bars_per_year
    )


def realized_ratio_proxy(close: pd.Series, iv_index: pd.Series, *, window_bars: int,
                         bars_per_year: float, fallback_ratio: float,
                         min_overlap_bars: int) -> pd.Series:
    """``realized_ratio``: realised vol[t] x ratio[t], the ratio from bars strictly before t.

    ``ratio[t]`` is the geometric mean of ``iv_index / realised vol`` over the bars before t
    that have both, once ``min_overlap_bars`` of them exist, and ``fallback_ratio`` before
    that. NaN before the first full realised-vol window.
    """
    rv = realized_vol_series(close, window_bars, bars_per_year)
    both = iv_index.notna() & rv.notna() & (iv_index > 0) & (rv > 0)
    log_ratio = pd.Series(
        np.where(both, np.log(iv_index.where(both) / rv.where(both)), 0.0), index=close.index
    )
    prior_sum = log_ratio.cumsum().shift(1, fill_value=0.0)
    prior_n = both.astype(float).cumsum().shift(1, fill_value=0.0)
    calibrated = prior_n >= min_overlap_bars
    ratio = np.where(calibrated, np.exp(prior_sum / prior_n.where(calibrated, 1.0)),
                     fallback_ratio)
    return (rv * ratio).rename("realized_ratio_proxy")


# --------------------------------------------------------------------------- GARCH
def _fit_gjr(returns_pct: np.ndarray) -> tuple[float, float, float, float, float]:
    """(mu, omega, alpha, gamma, beta) of a GJR-GARCH(1,1) fitted to ``returns_pct``."""
    from arch import arch_model  # arch imports slowly; only the garch_vrp proxy needs it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_model(returns_pct, mean="Constant", vol="GARCH", p=1, o=1, q=1,
                         dist="normal", rescale=False).fit(disp="off", show_warning=False)
    p = res.params
    return (float(p["mu"]), float(p["omega"]), float(p["alpha[1]"]), float(p["gamma[1]"]),
            float(p["beta[1]"]))


def _next_variance(returns_pct: np.ndarray, params, backcast: float) -> np.ndarray:
    """sigma^2[s+1] for every s: the variance of the return after bar s, known at bar s."""
    from scipy.signal import lfilter  # scipy.signal imports slowly (seconds); needed here only

    mu, omega, alpha, gamma, beta = params
    eps = returns_pct - mu
    shock = (alpha + gamma * (eps < 0.0)) * eps * eps
    out, _ = lfilter([1.0], [1.0, -beta], omega + shock, zi=[beta * backcast])
    return out


def _mean_variance_ahead(next_var: np.ndarray, params, horizon_bars: int) -> np.ndarray:
    """Mean expected variance over the next ``horizon_bars`` bars given sigma^2[t+1]."""
    _, omega, alpha, gamma, beta = params
    persistence = alpha + 0.5 * gamma + beta  # E[1{eps<0}] = 1/2 under a symmetric law
    powers = persistence ** np.arange(horizon_bars, dtype=float)
    drift = omega * np.concatenate(([0.0], np.cumsum(powers)[:-1]))  # omega * sum_{j<k} p^j
    return drift.mean() + powers.mean() * next_var


def garch_vol_forecast(close: pd.Series, bars_per_year: float, *,
                       spec: GarchSpec = GARCH_SPEC, needed: pd.Series | None = None
                       ) -> pd.Series:
    """Causal GJR-GARCH(1,1) forecast of the annualised vol over the next 30 calendar days.

    At bar t the forecast uses the parameters of the latest fit at or before t (fits on every
    log return up to the fit bar, the first after ``min_history`` bars, then every refit
    interval, counted from the frame's first bar) and the variance filtered through the return
    of bar t. Truncating the frame after t leaves the value at t unchanged. NaN before the
    first fit, and (to save fits) in refit blocks where ``needed`` (a boolean Series) is False.

    Returns:
        Series named ``garch_vol_annualized`` on ``close``'s index (decimal).
    """
    values = close.to_numpy(dtype="float64")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        bad = close.index[~(np.isfinite(values) & (values > 0))][0]
        raise ValueError(f"garch_vrp proxy needs positive finite closes; bar {bad} has "
                         f"{close.loc[bad]!r}")
    if not bars_per_year > 0:
        raise ValueError(f"bars_per_year must be > 0, got {bars_per_year}")
    want = (np.ones(len(values), bool) if needed is None
            else needed.reindex(close.index, fill_value=False).to_numpy(bool))
    out = _garch_vol_values(values.tobytes(), want.tobytes(), float(bars_per_year), spec)
    return pd.Series(out, index=close.index, name="garch_vol_annualized")


@functools.lru_cache(maxsize=8)
def _garch_vol_values(close_bytes: bytes, want_bytes: bytes, bars_per_year: float,
                      spec: GarchSpec) -> np.ndarray:
    """:func:`garch_vol_forecast`'s values; memoised (a pure function of its arguments), since
    every environment built on one frame asks for the same series (about 2 s of fits)."""
    values = np.frombuffer(close_bytes, dtype="float64")
    want = np.frombuffer(want_bytes, dtype=bool)
    horizon, min_history, refit = spec.bars(bars_per_year)
    out = np.full(len(values), np.nan)
    returns_pct = PERCENT_PER_UNIT * np.diff(np.log(values))  # returns_pct[s] = return of bar s + 1
    backcast = float(np.mean(returns_pct[:75] ** 2)) if len(returns_pct) else 0.0
    for fit_bar in range(min_history, len(values), refit):
        block_end = min(fit_bar + refit, len(values))
        if not want[fit_bar:block_end].any():
            continue
        params = _fit_gjr(returns_pct[:fit_bar])  # returns of bars 1..fit_bar
        next_var = _next_variance(returns_pct[:block_end - 1], params, backcast)
        mean_var = _mean_variance_ahead(next_var[fit_bar - 1:block_end - 1], params, horizon)
        out[fit_bar:block_end] = np.sqrt(np.maximum(mean_var, 0.0) * bars_per_year) / PERCENT_PER_UNIT
    out.flags.writeable = False
    return out


def garch_vrp_proxy(close: pd.Series, bars_per_year: float, *, ratio: float = GARCH_VRP_RATIO,
                    needed: pd.Series | None = None) -> pd.Series:
    """``garch_vrp``: :func:`garch_vol_forecast` x ``ratio`` (an implied-vol level)."""
    return (garch_vol_forecast(close, bars_per_year, needed=needed) * ratio).rename(
        "garch_vrp_proxy")


def fit_vrp_ratio(iv_index: pd.Series, forecast_vol: pd.Series) -> tuple[float, int]:
    """(geometric mean of ``iv_index / forecast_vol`` over bars with both > 0, bar count)."""
    both = (iv_index > 0) & (forecast_vol > 0)
    if not both.any():
        raise ValueError("no bar has both an implied vol and a forecast to fit the ratio on")
    return float(np.exp(np.mean(np.log(iv_index[both] / forecast_vol[both])))), int(both.sum())


# --------------------------------------------------------------------------- dispatch
def _frame_name(frame: pd.DataFrame) -> str:
    attrs = frame.attrs
    name = " ".join(str(attrs[k]) for k in ("source", "symbol") if attrs.get(k))
    return f"market data '{name}'" if name else "the market frame"


def implied_vol_level(frame: pd.DataFrame, cfg: SurfaceConfig, *,
                      bars_per_year: float = TRADING_DAYS_PER_YEAR,
                      rows: pd.Series | None = None) -> pd.Series:
    """``iv_index`` where present, the proxy ``cfg.iv_proxy`` elsewhere (an index level, decimal).

    ``rows`` (a boolean Series on the frame's index; None: every row) are the rows whose value
    the caller reads: ``garch_vrp`` skips the fits of refit blocks without one (their rows are
    NaN), which leaves every value of ``rows`` as it is (each block's values come from its own
    fit, on the returns before it).

    Raises:
        UserInputError: ``iv_proxy`` is ``none`` and the frame has no implied vol at all.
    """
    if "iv_index" in frame.columns:
        iv = frame["iv_index"].astype(float)
    else:
        iv = pd.Series(np.nan, index=frame.index)
    missing = iv.isna()
    if not missing.any():
        return iv.rename("iv_level")
    if cfg.iv_proxy == "none":
        if missing.all():
            raise UserInputError(
                f"{_frame_name(frame)} has no implied volatility (no 'iv_index' values; a CSV "
                f"needs an 'iv' or 'vix' column) and {IV_PROXY_KEY} is 'none'; give implied vol "
                f"or set {IV_PROXY_KEY} to garch_vrp or realized_ratio")
        proxy = pd.Series(np.nan, index=frame.index)
    elif cfg.iv_proxy == "realized_ratio":
        proxy = realized_ratio_proxy(
            frame["close"], iv, window_bars=cfg.realized_window_bars, bars_per_year=bars_per_year,
            fallback_ratio=cfg.fallback_iv_to_realized_ratio,
            min_overlap_bars=cfg.min_calibration_overlap_bars)
    else:
        needed = missing if rows is None else missing & rows.reindex(frame.index,
                                                                     fill_value=False)
        proxy = garch_vrp_proxy(frame["close"], bars_per_year, needed=needed)
    return iv.where(~missing, proxy).rename("iv_level")


def describe_iv_proxy(frame: pd.DataFrame, cfg: SurfaceConfig, segments: dict, *,
                      bars_per_year: float) -> dict:
    """What priced implied vol on each segment: the proxy's name, description and bar counts.

    ``segments`` maps a name to ``(start, end)``. Returns a JSON-ready dict with ``iv_proxy``,
    ``description``, ``config_key``, ``ratio`` and ``fit`` (``garch_vrp``), ``segments`` (per
    segment: bars, bars priced by the proxy, first and last such bar) and ``summary`` (one line).

    Raises:
        UserInputError: a segment has bars without any implied vol: no ``iv_index`` under
            ``none``, or too little history for the proxy (naming the key, segment and bar).
    """
    name = cfg.iv_proxy
    description = IV_PROXY_DESCRIPTIONS[name].format(
        ratio=GARCH_VRP_RATIO, window=cfg.realized_window_bars,
        overlap=cfg.min_calibration_overlap_bars, fallback=cfg.fallback_iv_to_realized_ratio)
    in_segments = pd.Series(False, index=frame.index)
    for start, end in segments.values():
        in_segments.loc[str(start):str(end)] = True
    # Only the segments' bars are read: the proxy skips the fits of blocks without one (the
    # embedded data's years before the VIX, say), which leaves every read value as it is.
    level = implied_vol_level(frame, cfg, bars_per_year=bars_per_year, rows=in_segments)
    has_index = (frame["iv_index"].notna() if "iv_index" in frame.columns
                 else pd.Series(False, index=frame.index))
    per_segment, parts = {}, []
    for seg, (start, end) in segments.items():
        window = slice(str(start), str(end))
        proxied = ~has_index.loc[window]
        hole = level.loc[window].isna()
        if hole.any():
            first = hole.index[hole.to_numpy()][0]
            why = ("has no iv_index there" if name == "none"
                   else f"gives no value there (too little history before it: {name} needs "
                        f"{GARCH_SPEC.min_history_years:g} years of bars; start the data earlier "
                        f"or set {IV_PROXY_KEY} to realized_ratio)" if name == "garch_vrp"
                   else "gives no value there (its realised-vol window is not full yet)")
            raise UserInputError(
                f"segment '{seg}' ({start}..{end}): {int(hole.sum())} bar(s) of "
                f"{_frame_name(frame)} have no implied volatility, first {first.date()}; "
                f"{IV_PROXY_KEY} '{name}' {why}")
        dates = proxied.index[proxied.to_numpy()]
        per_segment[seg] = {"bars": int(len(proxied)), "bars_priced_by_proxy": int(len(dates)),
                            "first_proxy_bar": str(dates[0].date()) if len(dates) else None,
                            "last_proxy_bar": str(dates[-1].date()) if len(dates) else None}
        parts.append(f"{seg} {len(dates)}/{len(proxied)}")
    summary = (f"iv_index where present, else {IV_PROXY_KEY} = {name}: {description}; "
               f"bars priced by the proxy: {', '.join(parts)}")
    doc = {"iv_proxy": name, "config_key": IV_PROXY_KEY, "description": description,
           "segments": per_segment, "summary": summary}
    if name == "garch_vrp":
        doc.update(ratio=GARCH_VRP_RATIO, fit=dict(GARCH_VRP_FIT))
    return doc


# --------------------------------------------------------------------------- fit (CLI)
def _median_abs_error_points(proxy: pd.Series, truth: pd.Series) -> float:
    ok = proxy.notna() & truth.notna()
    return float(np.median(np.abs(proxy[ok] - truth[ok]))) * VOL_POINTS_PER_UNIT


def fit_report(frame: pd.DataFrame, *, fit_start: str = "2014-01-01",
               fit_end: str = "2015-12-31", split: str = "2017-01-01", realized_window_bars: int = 21,
               fallback_ratio: float = 1.2, min_overlap_bars: int = 60) -> dict:
    """The shipped ratio's fit and the proxies' out-of-sample errors against the real VIX.

    ``ratio_all`` is fitted on every bar from ``fit_start`` to ``fit_end`` with both (the
    shipped constant; ``fit_end`` is the last training bar of ``configs/default.yaml``, so no
    shipped config's validation or test bar informs it);
    the out-of-sample rows fit the ratio on ``fit_start``..``split`` and score the bars from
    ``split`` on, against the real ``iv_index`` (median absolute error, mean error, in vol
    points). ``realized_ratio`` is the earlier proxy with the VIX hidden from ``split`` (its
    ratio calibrated on the overlap before it), ``realized_x_fallback`` the same with no overlap
    at all (a CSV without implied vol).
    """
    bpy = TRADING_DAYS_PER_YEAR
    iv = frame["iv_index"].astype(float)
    garch = garch_vol_forecast(frame["close"], bpy)
    ratio_all, n_all = fit_vrp_ratio(iv.loc[fit_start:fit_end], garch.loc[fit_start:fit_end])
    before = slice(fit_start, pd.Timestamp(split) - pd.Timedelta(days=1))
    ratio_in, n_in = fit_vrp_ratio(iv.loc[before], garch.loc[before])
    hidden = iv.where(iv.index < pd.Timestamp(split))
    truth = iv.loc[split:]
    proxies = {
        "garch_vrp": garch * ratio_in,
        "realized_ratio": realized_ratio_proxy(
            frame["close"], hidden, window_bars=realized_window_bars, bars_per_year=bpy,
            fallback_ratio=fallback_ratio, min_overlap_bars=min_overlap_bars),
        "realized_x_fallback": realized_vol_series(frame["close"], realized_window_bars, bpy)
        * fallback_ratio,
    }
    out_of_sample = {
        name: {"median_abs_error_vol_points": _median_abs_error_points(p.loc[split:], truth),
               "mean_error_vol_points": float((p.loc[split:] - truth).mean())
               * VOL_POINTS_PER_UNIT}
        for name, p in proxies.items()}
    span = iv.loc[fit_start:fit_end].dropna().index
    return {"ratio_all": round(ratio_all, 4), "bars_all": n_all,
            "fitted_on": f"{span[0].date()}..{span[-1].date()}",
            "ratio_fit_before_split": round(ratio_in, 4), "bars_before_split": n_in,
            "split": split, "test_bars": int(truth.notna().sum()),
            "test_mean_vix_vol_points": float(truth.mean()) * VOL_POINTS_PER_UNIT,
            "out_of_sample": out_of_sample,
            "shipped_ratio": GARCH_VRP_RATIO}
