"""What several test modules share: the project's paths, the subprocess runner, the tiny
experiment config, an in-process runner of the command-line entry points, run-folder copies,
journal dumps and a small learnability-suite env. Fixtures built on these live in
``tests/conftest.py``; a test module imports from here (``from tests.helpers import ...``),
never from another test module."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DATA = TESTS / "data"
REAL_CHAINS = DATA / "real_chains"
SPX_CHAIN = REAL_CHAINS / "spx_slice_2019-05-06_07.csv.gz"  # two 2019 SPX sessions
SPY_CHAIN = REAL_CHAINS / "spy_slice_2021-03-01_05.csv"
TINY_TIMESTEPS = 256

# The test modules using the session's tiny trained run (the ``tiny_run`` fixture): `make test`
# runs them on one pytest-xdist worker so that it is trained once (tests/conftest.py);
# tests/test_suite_layout.py checks the list against the test modules' sources.
TINY_RUN_MODULES = ("tests/test_audit.py", "tests/test_cli.py", "tests/test_trade.py")


def run(*args: str, cwd: Path = ROOT, env: dict | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """``python *args`` in a new interpreter (the command line as a user types it)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def tiny_config(cache_dir: Path) -> dict:
    """The tiny experiment every end-to-end test trains: embedded data, one forecaster and one
    reference, a 16-unit policy, 256 PPO steps (two checkpoints, two validations)."""
    return {
        "name": "tiny",
        "data": {"source": "embedded", "start": "2010-01-01"},
        "segments": {"train": {"start": "2014-01-01", "end": "2015-06-30"},
                     "valid": {"start": "2015-07-01", "end": "2015-12-31"},
                     "test": {"start": "2016-01-01", "end": "2016-06-30"}},
        "forecast": {"first_forecast_date": "2013-10-01", "members": ["vol_rw"],
                     "references": ["random_walk"], "refit_every_bars": 252,
                     "cache_dir": str(cache_dir)},
        "env": {"underlying_price_scale": 0.1, "episode_length_bars": 40},
        "agent": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [16],
                  "vec_normalize": True},
        "train": {"total_timesteps": TINY_TIMESTEPS, "checkpoint_every_steps": 128,
                  "eval_every_steps": 128, "n_envs": 1, "progress_bar": False},
        "eval": {"bootstrap_samples": 200},
    }


def copy_run(run_dir: Path, target: Path, *, training: bool = False) -> Path:
    """A private copy of a trained run folder (what evaluate.py and trade.py read), for a test
    that writes into it or breaks it; ``training`` keeps checkpoints/ and tb/ too."""
    skip = () if training else ("checkpoints", "tb")
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("eval", "trade", ".lock",
                                                                   *skip))
    return target


def journal_rows(path: Path) -> dict:
    """Every table of an executor journal (``Journal.dump``)."""
    from execution.journal import Journal

    journal = Journal(path)
    try:
        return journal.dump()
    finally:
        journal.close()


class InProcess:
    """Runs an entry point's ``main`` through ``common.cli.run_cli`` in this process, as its
    ``if __name__ == "__main__"`` does, without the seconds a new interpreter spends importing
    torch and pandas. Its logging goes to stderr with the command line's format and level;
    signal handlers it installs (the kill switch's SIGTERM) and torch's thread count are put
    back afterwards. Returns a ``CompletedProcess`` like :func:`run`.

    Used where the test is about what the command does, not about the process; each entry point
    keeps at least one test that runs it as a real subprocess."""

    def __init__(self, capsys, monkeypatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, main: Callable[[list[str]], int], argv: Sequence[str], prog: str,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        import torch

        from common.cli import run_cli

        self.capsys.readouterr()  # drop what earlier steps of the test printed
        root = logging.getLogger()
        handler = logging.StreamHandler(sys.stderr)  # capsys's stream while the test runs
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s",
                                               "%H:%M:%S"))
        level, threads = root.level, torch.get_num_threads()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        with self.monkeypatch.context() as patch:
            patch.setattr(signal, "signal", lambda *args: None)  # keep pytest's handlers
            if env is not None:
                for key in set(os.environ) - set(env):
                    patch.delenv(key)
                for key, value in env.items():
                    patch.setenv(key, value)
            try:
                code = run_cli(main, list(argv), prog=prog)
            except SystemExit as exc:  # argparse's usage errors exit 2 themselves
                code = exc.code
            finally:
                root.removeHandler(handler)
                root.setLevel(level)
                torch.set_num_threads(threads)
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess([prog, *argv], code, out, err)

    def evaluate(self, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        import evaluate

        return self(evaluate.main, argv, "evaluate.py", env)

    def trade(self, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        import trade

        return self(trade.main, argv, "trade.py", env)

    def train(self, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        import train

        return self(train.main, argv, "train.py", env)


def vrp_suite_vec_env():
    """One training env on a short path of the learnability suite's ``vrp`` market, in SB3's
    ``DummyVecEnv``: a small market where a few MaskablePPO updates move the policy."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.learnability import SuiteSettings, heldout_envs
    from cli.learnability import suite_config

    settings = SuiteSettings("vrp", n_heldout_paths=1, heldout_episodes_per_path=1)
    env = heldout_envs(settings, suite_config(settings, 200))[0]
    env.mode = "train"
    return DummyVecEnv([lambda: env])
