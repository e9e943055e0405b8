"""Tests of the PPO hyper-parameter search (``agents.tune``).

The shared-study test starts a private PostgreSQL server (the distribution's binaries, as
``.ci/run`` installs them) in a temporary folder on a free port, and runs two worker processes
on one study at once. A tiny real search on the quick config checks the files it writes and
that ``train.py`` trains with the best parameters.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from agents.tune import NET_ARCHS, TuneError, sample_agent_params
from config import load_config

ROOT = Path(__file__).resolve().parent.parent
STUDY_TRIALS = 8
SERVER_START_SECONDS = 30


def test_search_space_fits_the_budget():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        params = sample_agent_params(study.ask(), n_envs=2, total_timesteps=1024)
        assert 2 * params["n_steps"] * 2 <= 1024
        assert params["batch_size"] <= params["n_steps"] * 2
        assert 1e-5 <= params["learning_rate"] <= 1e-2
        assert params["net_arch"] in NET_ARCHS.values()
        load_config(ROOT / "configs" / "quick.yaml",
                    [f"agent.{k}={json.dumps(v)}" for k, v in params.items()])
    with pytest.raises(TuneError, match="--timesteps 100"):
        sample_agent_params(study.ask(), n_envs=1, total_timesteps=100)


# ---------------------------------------------------------------------------- PostgreSQL
def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> tuple[list[str], str | None]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` (or ``nobody``) user."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists")


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries missing under /usr/lib/postgresql/*/bin in CI "
                        "(.ci/run installs the 'postgresql' package)")
        pytest.skip("PostgreSQL binaries not installed (/usr/lib/postgresql/*/bin); "
                    "apt-get install postgresql, as .ci/run does")
    prefix, user = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="pgtest-"))
    if user is not None:
        shutil.chown(base, user=user)
    data_dir, port = base / "data", _free_port()
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data_dir), "-U", "optuna",
                    "--auth=trust", "--no-sync"], check=True, capture_output=True)
    server = subprocess.Popen(
        [*prefix, str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port),
         "-h", "127.0.0.1", "-k", str(base), "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql+psycopg2://optuna@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"PostgreSQL did not start on port {port}")
                time.sleep(0.2)
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        for _ in range(50):  # accepting connections is not the same as ready
            try:
                with engine.connect():
                    break
            except sqlalchemy.exc.OperationalError:
                time.sleep(0.2)
        engine.dispose()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


WORKER = """
import os, sys, time
from agents.tune import optimize
url, study, trials, log_path, seed = sys.argv[1:6]

def objective(trial):
    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(0.3)  # long enough that both workers overlap
    with open(log_path, "a") as log:
        log.write(f"{trial.number} {os.getpid()}\\n")
    return -x * x

# Start together (imports take seconds on a loaded machine): wait for the other worker.
ready = os.path.join(os.path.dirname(log_path), f"ready_{os.getpid()}")
open(ready, "w").close()
deadline = time.time() + 60
while time.time() < deadline and len([f for f in os.listdir(os.path.dirname(log_path))
                                      if f.startswith("ready_")]) < 2:
    time.sleep(0.05)
optimize(study, url, int(trials), objective, sampler_seed=int(seed))
"""


def test_two_workers_share_one_postgresql_study(postgres_url, tmp_path):
    log_path = tmp_path / "executions.log"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, postgres_url, "shared",
                                 str(STUDY_TRIALS), str(log_path), str(seed)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read()[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    executions = [line.split() for line in log_path.read_text().splitlines()]
    # Every trial recorded exactly once: one row per trial number, one execution per row.
    assert sorted(numbers) == list(range(len(trials)))
    assert sorted(int(n) for n, _ in executions) == sorted(numbers)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # The study's total: simultaneous starts may add at most one trial per extra worker.
    assert STUDY_TRIALS <= len(trials) <= STUDY_TRIALS + len(workers) - 1
    assert len({pid for _, pid in executions}) == len(workers)  # both workers did work


# ---------------------------------------------------------------------------- a real search
def test_tiny_search_on_the_quick_config_feeds_train(tmp_path):
    fast = ["--set", "forecast.members=[vol_rw]", "--set", "forecast.references=[random_walk]",
            "--set", f"forecast.cache_dir={tmp_path / 'cache'}", "--set", "train.n_envs=2"]
    out = tmp_path / "tune"
    tune = subprocess.run(
        [sys.executable, "-m", "agents.tune", "--config", "configs/quick.yaml", "--trials", "2",
         "--seeds-per-trial", "2", "--timesteps", "256", "--eval-every-rollouts", "1",
         "--out", str(out), "--no-progress", *fast],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert tune.returncode == 0, tune.stderr[-3000:]
    summary = json.loads((out / "tune_summary.json").read_text())
    assert len(summary["trials"]) == 2 and summary["completed"] >= 1
    assert 0.0 <= summary["deflated_sharpe"] <= 1.0
    assert len(summary["best_seed_sharpes"]) == 2
    best = yaml.safe_load((out / "best_params.yaml").read_text())["agent"]
    assert best == summary["best_agent_params"]
    assert "Deflated Sharpe" in (out / "tune_report.md").read_text()
    assert (out / "optuna.db").exists()  # SQLite by default

    run_dir = tmp_path / "run"
    overrides = shlex.split((out / "best_overrides.txt").read_text())
    train = subprocess.run(
        [sys.executable, "train.py", "--config", "configs/quick.yaml", "--run-dir", str(run_dir),
         "--total-timesteps", "256", "--no-progress", *fast, *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    used = yaml.safe_load((run_dir / "config.yaml").read_text())["agent"]
    assert {k: used[k] for k in best} == best
    from agents.ppo import load_model

    model = load_model(run_dir / "model.zip", used["algo"])
    assert model.n_steps == best["n_steps"] and model.batch_size == best["batch_size"]
    assert model.learning_rate == pytest.approx(best["learning_rate"])
