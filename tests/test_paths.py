"""Training paths: block bootstrap and GJR-GARCH paths fitted on the training segment only."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from agents.paths import (
    RESIDENT_BLOCKS_PER_PATH,
    PathSwitchingEnv,
    bootstrap_indices,
    path_envs,
    training_panels,
)
from config import ConfigError, load_config
from data import build_features
from data.synthetic import FLAT_SURFACE, SyntheticSpec, make_synthetic_market
from envs import make_env
from envs.factory import EnvInputs
from envs.portfolio import TABLE_BLOCK_BARS
from envs.table_cache import MemoryUnitStore
from forecasters.synthetic import synthetic_forecast_panel

N_BARS = 700
TRAIN_END_ROW = 450


def _config(dates, source: str, n_paths: int = 3):
    overrides = [f"options.surface.{k}={v}" for k, v in FLAT_SURFACE.items()]
    overrides += [
        f"segments.train={{start: {dates[60].date()}, end: {dates[TRAIN_END_ROW].date()}}}",
        f"segments.valid={{start: {dates[TRAIN_END_ROW + 1].date()}, "
        f"end: {dates[TRAIN_END_ROW + 120].date()}}}",
        f"segments.test={{start: {dates[TRAIN_END_ROW + 121].date()}, end: {dates[-1].date()}}}",
        f"train.paths={{source: {source}, n_paths: {n_paths}, block_bars: 10, seed: 4}}",
        # every bar and no minimum hold, as these tests were written (quick.yaml decides every
        # 5 bars and holds 20 since stop 44: fewer opens, fewer blocks read back)
        "agent.decision_every_bars=1",
        "env.min_holding_bars=0",
    ]
    return load_config("configs/quick.yaml", overrides)


def _inputs(perturb_after: int | None = None) -> EnvInputs:
    market = make_synthetic_market(SyntheticSpec("vrp", n_bars=N_BARS), seed=21)
    frame = market.frame.copy()
    frame.attrs = dict(market.frame.attrs)
    panel, long = synthetic_forecast_panel(market, [1, 2, 3, 4, 5], [0.05, 0.125, 0.5, 0.875,
                                                                      0.95])
    if perturb_after is not None:  # every later row changes: prices, implied vol, forecasts
        later = np.arange(N_BARS) > perturb_after
        for column in ("open", "high", "low", "close"):
            frame.loc[later, column] *= 1.37
        frame.loc[later, "iv_index"] *= 0.61
        values = panel.values.copy()
        values[later] += 0.05
        panel = type(panel)(panel.dates, panel.horizons, panel.quantile_levels, values,
                            panel.model)
    return EnvInputs(frame, build_features(frame), panel, long)


def _panels(source: str, perturb_after: int | None = None):
    inputs = _inputs(perturb_after)
    cfg = _config(inputs.frame.index, source)
    real = make_env(cfg, "train", inputs=inputs).panel
    return real, training_panels(cfg, inputs, real)


@pytest.mark.parametrize("source", ["bootstrap", "garch", "mix"])
def test_rows_after_the_training_segment_never_reach_the_generator(source):
    real, panels = _panels(source)
    real_p, perturbed = _panels(source, perturb_after=TRAIN_END_ROW)
    assert len(panels) == len(perturbed) == (4 if source == "mix" else 3)
    for a, b in zip(panels, perturbed, strict=True):
        for field in ("spot", "atm_iv", "rate", "market_obs", "forecast_median",
                      "forecast_width_75", "implied_move"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert a.dates.equals(b.dates) and a.dates.equals(real.dates)
    # ...and the perturbation was real: the validation segment did change.
    cfg = _config(_inputs().frame.index, "real")
    v1 = make_env(cfg, "valid", inputs=_inputs()).panel
    v2 = make_env(cfg, "valid", inputs=_inputs(TRAIN_END_ROW)).panel
    assert not np.array_equal(v1.spot, v2.spot)


def test_bootstrap_blocks_carry_their_own_forecasts_and_returns():
    real, panels = _panels("bootstrap")
    expiry = real.market_obs_names.index("days_to_monthly_expiry_over_30")
    keep = [c for c in range(real.market_obs.shape[1]) if c != expiry]
    source_rows = {real.market_obs[i, keep].tobytes(): i for i in range(len(real))}
    real_ret = np.diff(np.log(real.spot), prepend=np.nan)
    for path in panels:
        new_ret = np.diff(np.log(path.spot), prepend=np.nan)
        np.testing.assert_array_equal(path.market_obs[:, expiry], real.market_obs[:, expiry])
        for k in range(1, len(path)):
            i = source_rows[path.market_obs[k, keep].tobytes()]
            np.testing.assert_array_equal(path.forecast_median[k], real.forecast_median[i])
            assert path.atm_iv[k] == real.atm_iv[i]
            assert new_ret[k] == pytest.approx(real_ret[i], abs=1e-12)
        assert not np.array_equal(path.spot, real.spot)


def test_stationary_bootstrap_blocks_have_the_asked_mean_length():
    idx = bootstrap_indices(5000, 20000, 20.0, np.random.default_rng(0))
    breaks = np.flatnonzero(np.diff(idx) != 1)
    assert abs(len(idx) / (len(breaks) + 1) - 20.0) < 2.0
    assert idx.min() >= 1 and idx.max() < 5000


def test_garch_paths_keep_the_training_premium():
    inputs = _inputs()
    cfg = _config(inputs.frame.index, "garch", n_paths=2)
    real = make_env(cfg, "train", inputs=inputs).panel
    for path in training_panels(cfg, inputs, real):
        rv = np.std(np.diff(np.log(path.spot))) * np.sqrt(252)
        assert 1.05 < np.mean(path.atm_iv) / rv < 1.6  # the planted premium is 1.25


def test_each_episode_draws_a_path_and_a_seed_replays_it():
    inputs = _inputs()
    cfg = _config(inputs.frame.index, "bootstrap")
    real = make_env(cfg, "train", inputs=inputs).panel
    envs = path_envs(cfg, training_panels(cfg, inputs, real), 2)
    drawn = set()
    for seed in range(12):
        envs[0].reset(seed=seed)
        drawn.add(envs[0].path_index)
    assert len(drawn) == 3
    obs_a, _ = envs[0].reset(seed=5)
    obs_b, _ = envs[1].reset(seed=5)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert envs[0].envs[0].tables is envs[1].envs[0].tables
    assert isinstance(envs[0], PathSwitchingEnv)


# ---------------------------------------------------------------- memory of the path tables
# The reference is the straightforward tables (every block held, no store) stepped in this
# process: a digest recorded on one machine does not hold on another, whose NumPy and OpenBLAS
# take other SIMD paths (an AVX-512 machine moves the last bits of the GARCH path's prices).


def _stepped(envs, n_steps: int = 200, seed: int = 0) -> str:
    """Digest of every observation and reward of ``envs`` stepped in turn (as a DummyVecEnv
    does), each taking a uniform valid action from a generator of its own."""
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    for k, env in enumerate(envs):
        digest.update(env.reset(seed=seed + k)[0].tobytes())
    for _ in range(n_steps):
        for env in envs:
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            obs, reward, terminated, truncated, _ = env.step(action)
            digest.update(obs.tobytes())
            digest.update(np.float64(reward).tobytes())
            if terminated or truncated:
                digest.update(env.reset()[0].tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def mix_paths():
    inputs = _inputs()
    cfg = _config(inputs.frame.index, "mix", n_paths=2)  # the real path, a bootstrap, a GARCH
    return cfg, training_panels(cfg, inputs, make_env(cfg, "train", inputs=inputs).panel)


def _with_table_cache(cfg, directory):
    return cfg.model_copy(update={"env": cfg.env.model_copy(
        update={"table_cache_dir": None if directory is None else str(directory)})})


@pytest.fixture(scope="module")
def stepped_with_every_block(mix_paths):
    """``_stepped`` on the straightforward tables: every block held, no store, no cache."""
    cfg, panels = mix_paths
    envs = path_envs(_with_table_cache(cfg, None), panels, 3, resident_blocks=None)
    tables = [env.tables for env in envs[0].envs]
    digest = _stepped(envs)
    assert all(t.store is None and t.evicted == 0 for t in tables)
    assert len({bar // TABLE_BLOCK_BARS for t in tables for bar, _ in t._units}) > 3
    return digest


@pytest.mark.parametrize("resident_blocks, on_disk", [
    (RESIDENT_BLOCKS_PER_PATH, True),  # what training uses, with the table cache
    # one block per path: a block dropped at almost every move, kept in memory (slow: it
    # rebuilds from memory at most steps; the memory store's round trip is tested apart)
    pytest.param(1, False, marks=pytest.mark.slow),
])
def test_paths_keeping_few_blocks_step_bit_for_bit_as_every_block_held(
        mix_paths, stepped_with_every_block, tmp_path, resident_blocks, on_disk):
    cfg, panels = mix_paths
    cfg = _with_table_cache(cfg, tmp_path if on_disk else None)
    envs = path_envs(cfg, panels, 3, resident_blocks=resident_blocks)
    assert _stepped(envs) == stepped_with_every_block
    tables = [env.tables for env in envs[0].envs]
    assert len(tables) == 3 and all(t is env.tables for t, env in zip(
        tables, envs[2].envs, strict=True))
    for t in tables:
        assert len(t._built_blocks) <= resident_blocks
        assert {bar // TABLE_BLOCK_BARS for bar, _ in t._units} <= set(t._built_blocks)
        assert t.grids.cached_bars == 0  # forgotten once their units were built
        assert isinstance(t.store, MemoryUnitStore) != on_disk
    if resident_blocks == 1:  # blocks were dropped and read back
        assert sum(t.evicted for t in tables) > 10 and sum(t.store.loaded for t in tables) > 10


def test_a_later_process_loads_the_path_tables_from_the_table_cache(mix_paths, tmp_path):
    cfg, panels = mix_paths
    cfg = _with_table_cache(cfg, tmp_path)
    for t in (env.tables for env in path_envs(cfg, panels, 1)[0].envs):
        t.ensure_bar(0)
        assert t.store.written == 1
    again = [env.tables for env in path_envs(cfg, panels, 1)[0].envs]
    for t in again:
        t.ensure_bar(0)
    assert all(t.store.loaded == 1 and t.store.written == 0 for t in again)
    assert len({t.store.directory for t in again}) == 3  # one key per path


def test_memory_unit_store_round_trips_a_block_and_forgets_a_bad_one():
    store = MemoryUnitStore()
    assert store.load(0) is None
    arrays = {"a": np.arange(5.0), "why": np.array(["no expiry"])}
    store.save(0, arrays)
    back = store.load(0)
    assert back.keys() == arrays.keys() and np.array_equal(back["a"], arrays["a"])
    assert str(back["why"][0]) == "no expiry" and store.loaded == store.written == 1
    store.unreadable(0, ValueError("test"))
    assert store.load(0) is None and store.rebuilt == 1


def test_unknown_path_source_is_a_config_error():
    with pytest.raises(ConfigError, match="train.paths.source"):
        load_config("configs/quick.yaml", ["train.paths.source=shuffled"])
    assert load_config("configs/quick.yaml").train.paths.source == "real"
    assert isinstance(pd.Timestamp(_inputs().frame.index[0]), pd.Timestamp)


# ---------------------------------------------------------------- ablations
def _metrics_doc(sharpes: list[float], spa: float) -> dict:
    per_seed = {f"ppo_seed_{k}": {"sharpe": s, "bars": 252} for k, s in enumerate(sharpes)}
    return {"seeds": {"per_seed": per_seed}, "comparison": {"spa_pvalue": spa,
                                                            "best_baseline": "iron_condor"},
            "policies": {"iron_condor": {"sharpe": 0.8}}}


def test_ablation_table_has_median_range_spa_and_deflated_sharpe():
    from agents.ablate import ablation_table

    table = ablation_table({"real": _metrics_doc([-1.0, 0.5, 1.7], 0.6),
                            "bootstrap": _metrics_doc([0.2, 0.9, 1.1], 0.3)}, 252.0)
    real = table["variants"]["real"]
    assert (real["sharpe_median"], real["sharpe_min"], real["sharpe_max"]) == (0.5, -1.0, 1.7)
    assert table["variants"]["bootstrap"]["spa_pvalue"] == 0.3
    assert table["trials"] == 6 and table["best_trial"]["variant"] == "real"
    assert 0.0 <= table["deflated_sharpe_best_trial"] <= 1.0


def test_ablate_refuses_an_unknown_variant_in_one_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "agents.ablate", "--config", "configs/quick.yaml",
                          "--variants", "real,shuffled"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "--variants" in out.stderr and "Traceback" not in out.stderr
