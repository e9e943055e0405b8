"""The table cache (``envs.table_cache``): tables loaded from disk equal those built, bit for bit;
a change of any input is a new key (and a rebuild); an unreadable file is rebuilt, never fatal.
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import data
from config import load_config
from envs import EnvConfig, SpyOptionsEnv, build_market_panel, make_env
from envs.factory import EnvInputs
from envs.table_cache import TableCache, market_panel_key
from forecasters.panel import ForecastPanel
from options.costs import CostConfig
from options.strategies import StrategyConfig
from options.structures import STRUCTURES
from options.surface import SurfaceConfig

SCALE = 0.1
HORIZONS = (1, 2, 3, 4, 5)
LEVELS = (0.05, 0.125, 0.5, 0.875, 0.95)
START, END = "2016-01-01", "2016-05-31"  # about 100 bars: two blocks of 64


@cache
def inputs() -> EnvInputs:
    frame = data.load_market("embedded")
    iv = frame["iv_index"].ffill().dropna()
    values = np.stack([np.outer(iv.to_numpy() * math.sqrt(h / 252), norm.ppf(LEVELS))
                       for h in HORIZONS], axis=1)
    forecasts = ForecastPanel(pd.DatetimeIndex(iv.index), HORIZONS, LEVELS, values)
    return EnvInputs(frame, data.build_features(frame), forecasts, pd.DataFrame())


def panel_args(frame=None, start=START, end=END, surface=None):
    i = inputs()
    return (i.frame if frame is None else frame, i.features, i.forecasts, start, end,
            surface or SurfaceConfig(), SCALE, 2)


def env_on(cache_dir=None, costs=None, surface=None, frame=None, start=START, end=END,
           mode="train", **env_kwargs) -> SpyOptionsEnv:
    """An env on a short 2016 segment, its tables (and panel) through the cache in
    ``cache_dir`` (None: no cache)."""
    env_kwargs.setdefault("strategies", StrategyConfig(max_abs_log_moneyness=0.04))
    args = panel_args(frame, start, end, surface)
    table_cache = TableCache(cache_dir) if cache_dir is not None else None
    panel = (build_market_panel(*args) if table_cache is None
             else table_cache.market_panel(market_panel_key(*args),
                                           lambda: build_market_panel(*args)))
    return SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=SCALE, **env_kwargs),
                         surface or SurfaceConfig(), costs or CostConfig(), mode=mode,
                         info_level="full", table_cache=table_cache)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, list | tuple) and a and isinstance(a[0], float):
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    return type(a) is type(b) and a == b


def test_tables_loaded_from_disk_equal_the_built_ones_bit_for_bit(tmp_path):
    built = env_on(tmp_path)
    built.tables.build_all()
    assert built.tables.store.written == built.tables.n_blocks == 2
    loaded = env_on(tmp_path)
    loaded.tables.build_all()
    store = loaded.tables.store
    assert (store.loaded, store.written, store.rebuilt) == (2, 0, 0)
    for f in fields(built.panel):
        a, b = getattr(built.panel, f.name), getattr(loaded.panel, f.name)
        assert (a.equals(b) and a.dtype == b.dtype and a.freq == b.freq and a.name == b.name
                if f.name == "dates" else _same(a, b)), f.name
    compared = missing = with_path = 0
    for bar in range(len(built.panel)):
        for strategy in STRUCTURES:
            a, b = built.tables.unit(bar, strategy), loaded.tables.unit(bar, strategy)
            assert (a is None) == (b is None), (bar, strategy)
            if a is None:
                missing += 1
                assert loaded.tables.why_missing(bar, strategy) == \
                    built.tables.why_missing(bar, strategy)
                continue
            for f in fields(a):
                if f.name != "path":
                    assert _same(getattr(a, f.name), getattr(b, f.name)), (bar, f.name)
            assert [leg.expiry.unit for leg in a.legs] == [leg.expiry.unit for leg in b.legs]
            assert (a.path is None) == (b.path is None)
            if a.path is not None:
                with_path += 1
                for f in fields(a.path):
                    assert _same(getattr(a.path, f.name), getattr(b.path, f.name)), \
                        (bar, strategy, f.name)
            compared += 1
    assert compared > 300 and missing > 0 and with_path == compared


def test_a_loaded_path_makes_its_fields_on_first_read_equal_to_the_built_ones(tmp_path):
    """Loading a block leaves every unit's path unmade (most units are never opened) until
    a field is read; then all its fields are there, the same as the built path's. Copies and
    pickles of an unmade path are whole paths too."""
    import copy
    import pickle

    built = env_on(tmp_path)
    built.tables.build_all()
    loaded = env_on(tmp_path)
    loaded.tables.build_all()
    pairs = [(built.tables.unit(bar, s), loaded.tables.unit(bar, s))
             for bar in range(len(built.panel)) for s in STRUCTURES]
    pairs = [(a, b) for a, b in pairs if a is not None and a.path is not None]
    assert len(pairs) > 300
    assert all("_stored" in b.path.__dict__ for _, b in pairs)  # nothing made yet
    assert all("_stored" not in a.path.__dict__ for a, _ in pairs)  # built: made at once
    a, b = pairs[len(pairs) // 2]
    b_copy, b_pickled = copy.deepcopy(b.path), pickle.loads(pickle.dumps(b.path))
    assert "_stored" in b.path.__dict__
    assert b.path.mid_usd is b.path.mid_usd  # made once, kept
    assert "_stored" not in b.path.__dict__
    for other in (b.path, b_copy, b_pickled):
        for f in fields(a.path):
            assert _same(getattr(a.path, f.name), getattr(other, f.name)), f.name
    assert b_copy.quote_flags_at(0) == a.path.quote_flags_at(0)
    with pytest.raises(AttributeError, match="no attribute 'not_a_field'"):
        pairs[0][1].path.not_a_field  # noqa: B018 - reading is the test


def _run(env: SpyOptionsEnv, steps: int, seed: int):
    """A masked random policy that opens often; every observation, reward and info."""
    rng = np.random.default_rng(seed)
    trace = []
    obs, info = env.reset(seed=seed)
    trace.append((obs.tobytes(), repr(info)))
    for _ in range(steps):
        valid = np.flatnonzero(env.action_masks())
        action = int(valid[rng.integers(len(valid))]) if rng.random() < 0.5 else 0
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs.tobytes(), np.float64(reward).tobytes(), terminated, truncated,
                      repr(info)))
        if terminated or truncated:
            trace.append(("ledger", env.trade_ledger().to_csv(), env.equity_curve().to_csv()))
            obs, info = env.reset()
            trace.append((obs.tobytes(), repr(info)))
    return trace


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_an_env_on_cached_tables_steps_like_a_fresh_one(tmp_path, mode):
    env_on(tmp_path).tables.build_all()  # an earlier process filled the cache
    cached = env_on(tmp_path, mode=mode, episode_length_bars=40)
    fresh = env_on(None, mode=mode, episode_length_bars=40)
    assert cached.tables.store is not None and fresh.tables.store is None
    a, b = _run(cached, 300, seed=7), _run(fresh, 300, seed=7)
    assert cached.tables.store.loaded == 2 and cached.tables.store.written == 0
    assert sum(t[0] == "ledger" for t in a) >= 2  # several episodes, ledgers compared
    assert a == b


@pytest.mark.parametrize("change", ["cost", "surface", "one_spot", "segment", "strategy"])
def test_a_change_of_any_input_is_a_new_key_and_a_rebuild(tmp_path, change):
    base = env_on(tmp_path)
    base.reset(seed=0, options={"start_index": 0, "length_bars": 5})
    base.action_masks()
    assert base.tables.store.written == 1
    frame = None
    kwargs = {}
    if change == "cost":
        kwargs["costs"] = CostConfig(commission_per_contract_usd=0.66)
    elif change == "surface":
        kwargs["surface"] = SurfaceConfig(index_to_atm_ratio=0.95)
    elif change == "one_spot":
        frame = inputs().frame.copy()
        frame.attrs = dict(inputs().frame.attrs)
        frame.loc[pd.Timestamp("2016-01-05"), "close"] *= 1.001
        kwargs["frame"] = frame
    elif change == "segment":
        kwargs["start"] = "2016-01-05"
    else:
        kwargs["strategies"] = StrategyConfig(max_abs_log_moneyness=0.05)
    other = env_on(tmp_path, **kwargs)
    assert other.tables.store.directory != base.tables.store.directory
    other.reset(seed=0, options={"start_index": 0, "length_bars": 5})
    other.action_masks()
    assert other.tables.store.loaded == 0 and other.tables.store.written == 1
    panel_changes = change in ("surface", "one_spot", "segment")
    panels = sorted(tmp_path.glob("panel_*.npz"))
    assert len(panels) == (2 if panel_changes else 1)
    # ...and the unchanged inputs still find their tables.
    again = env_on(tmp_path)
    again.reset(seed=0, options={"start_index": 0, "length_bars": 5})
    again.action_masks()
    assert again.tables.store.loaded == 1 and again.tables.store.written == 0


def test_market_panel_key_changes_with_each_input():
    base = market_panel_key(*panel_args())
    frame = inputs().frame.copy()
    frame.attrs = dict(inputs().frame.attrs)
    frame.iloc[-1, frame.columns.get_loc("close")] += 0.01
    assert market_panel_key(*panel_args(frame=frame)) != base
    assert market_panel_key(*panel_args(end="2016-05-30")) != base
    assert market_panel_key(*panel_args(surface=SurfaceConfig(iv_proxy="realized_ratio"))) != base
    assert market_panel_key(*panel_args()) == base


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flipped", "other_block"])
def test_an_unreadable_cache_file_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    first = env_on(tmp_path)
    first.tables.build_all()
    block = first.tables.store.path(0)
    panel_file = next(tmp_path.glob("panel_*.npz"))
    if damage == "truncate":
        for path in (block, panel_file):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        block.write_bytes(b"not a zip file")
        panel_file.write_bytes(b"")
    elif damage == "flipped":  # bytes of the compressed arrays changed, the zip still whole
        for path in (block, panel_file):
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 3:len(raw) // 3 + 64] = bytes(64)
            path.write_bytes(bytes(raw))
    else:  # a readable file with another block's tables
        block.write_bytes(first.tables.store.path(1).read_bytes())
    with caplog.at_level(logging.WARNING, logger="envs.table_cache"):
        again = env_on(tmp_path)
        again.tables.build_all()
    store = again.tables.store
    # a damaged zip is refused on opening; a whole file of another block once read
    assert (store.rebuilt, store.written, store.loaded) == (
        1, 1, 2 if damage == "other_block" else 1)
    assert any("cannot be read" in r.message and "block_0000" in r.message
               for r in caplog.records)
    if damage != "other_block":
        assert any("panel_" in r.message for r in caplog.records)
    fresh = env_on(None)
    for bar in range(64):
        for strategy in STRUCTURES:
            a, b = again.tables.unit(bar, strategy), fresh.tables.unit(bar, strategy)
            assert (a is None) == (b is None)
            if a is not None:
                fresh.tables.path(b)
                assert _same(a.path.mid_usd, b.path.mid_usd)
    # the rebuilt file is whole again
    third = env_on(tmp_path)
    third.tables.build_all()
    assert (third.tables.store.loaded, third.tables.store.rebuilt) == (2, 0)


def test_make_env_shares_the_cache_between_processes_and_logs_it(tmp_path, caplog):
    cfg = load_config("configs/quick.yaml", [
        f"env.table_cache_dir={tmp_path}", f"segments.train={{start: {START}, end: {END}}}"])
    with caplog.at_level(logging.INFO, logger="envs.table_cache"):
        first = make_env(cfg, "train", inputs=inputs())
        first.reset(seed=0)
        first.action_masks()
        second = make_env(cfg, "train", inputs=inputs())
        second.reset(seed=0)
        second.action_masks()
    messages = [r.message for r in caplog.records]
    assert any("built and written to the table cache" in m for m in messages)
    assert any("loaded from the table cache" in m for m in messages)
    assert first.tables.store.written == 1 and second.tables.store.loaded == 1
    assert second.tables.store.directory == first.tables.store.directory
    vec = make_env(cfg, "train", share_with=second)  # vectorised envs share the tables
    assert vec.tables is second.tables
    off = load_config("configs/quick.yaml", ["env.table_cache_dir=null",
                                             f"segments.train={{start: {START}, end: {END}}}"])
    assert make_env(off, "train", inputs=inputs()).tables.store is None


def test_a_panel_on_custom_business_days_loads_back_without_a_rebuild(tmp_path, caplog):
    """Dates with a CustomBusinessDay freq (synthetic markets) are read back, not rebuilt."""
    from dataclasses import replace

    built = build_market_panel(*panel_args())
    custom = pd.DatetimeIndex(built.dates, freq=pd.offsets.CustomBusinessDay(
        holidays=[d for d in pd.bdate_range(built.dates[0], built.dates[-1])
                  if d not in set(built.dates)]))
    assert custom.freqstr == "C"
    panel = replace(built, dates=custom)
    cache = TableCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return panel

    cache.market_panel("k", build)
    with caplog.at_level(logging.WARNING, logger="envs.table_cache"):
        loaded = cache.market_panel("k", build)
    assert calls == [1] and not caplog.records
    assert loaded.dates.equals(panel.dates)
    assert np.array_equal(loaded.market_obs, panel.market_obs)
