"""Fixtures shared across the test modules (helpers they import are in ``tests/helpers.py``).

Session fixtures are built once per test process (once per worker under pytest-xdist) and are
read-only by convention: a test that writes into the trained run uses ``tiny_run_copy`` (or
``helpers.copy_run``) to get its own copy, so tests stay independent of their order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, TINY_RUN_MODULES, InProcess, copy_run, run, tiny_config


def pytest_xdist_make_scheduler(config, log):
    """`make test`'s `--dist loadfile`, except that the modules of
    :data:`tests.helpers.TINY_RUN_MODULES` run on one worker: the session's tiny run is
    trained once, not once per worker. (pytest-xdist's `loadgroup` would do it with marks,
    but its nodeid suffix is lost on pytest 9.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class TinyRunTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return "tiny_run" if module in TINY_RUN_MODULES else module

    return TinyRunTogether(config, log)


@pytest.fixture(scope="session")
def forecast_cache(tmp_path_factory) -> Path:
    """One walk-forward forecast cache for the session: every tiny experiment on the embedded
    data (train, evaluate, gym.make, the forecast gate) computes its panel once. The cache is
    content-addressed (config less cache_dir/gate, data and features hashed), so sharing it
    changes no result."""
    return tmp_path_factory.mktemp("forecast_cache")


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory, forecast_cache) -> Path:
    """A folder with ``tiny.yaml`` (``helpers.tiny_config`` on the shared forecast cache)."""
    base = tmp_path_factory.mktemp("tiny")
    (base / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(forecast_cache)))
    return base


@pytest.fixture(scope="session")
def tiny_run(tiny_workspace) -> Path:
    """The tiny experiment trained once by ``train.py`` (a real subprocess), for every test
    that needs a trained run: train.py's outputs, evaluate.py, trade.py. Do not write into it;
    take ``tiny_run_copy``."""
    run_dir = tiny_workspace / "runs" / "tiny"
    out = run(str(ROOT / "train.py"), "--config", str(tiny_workspace / "tiny.yaml"),
              "--run-dir", str(run_dir), "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """This test's own copy of ``tiny_run`` (without checkpoints/ and tb/)."""
    return copy_run(tiny_run, tmp_path / "run")


@pytest.fixture
def in_process(capsys, monkeypatch) -> InProcess:
    """Entry points' ``main`` run in this process: ``in_process.evaluate(*argv)``,
    ``.trade(*argv)``, ``.train(*argv)`` return a ``CompletedProcess``."""
    return InProcess(capsys, monkeypatch)


@pytest.fixture(scope="session")
def made_up_5m_csv(tmp_path_factory) -> Path:
    """A CSV of made-up 5-minute bars (``data.synthetic_intraday``): 40 NYSE sessions from
    2024-01-02 to 2024-02-28 (3,120 bars, stamped at bar starts, with an ``iv`` column in points)."""
    from data.synthetic_intraday import IntradaySpec, make_intraday_bars, write_csv

    frame = make_intraday_bars(IntradaySpec(sessions=40, bar_minutes=5), seed=3)
    return write_csv(frame, tmp_path_factory.mktemp("intraday") / "made_up_5m.csv")
