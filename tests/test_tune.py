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

from agents.tune import (
    NET_ARCHS,
    TuneError,
    below_baselines,
    sample_agent_params,
    storage_url,
)
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
        assert (params["n_steps"] * 2) % params["batch_size"] == 0
        assert 1e-5 <= params["learning_rate"] <= 1e-2
        assert params["net_arch"] in NET_ARCHS.values()
        load_config(ROOT / "configs" / "quick.yaml",
                    [f"agent.{k}={json.dumps(v)}" for k, v in params.items()])
    with pytest.raises(TuneError, match="--timesteps 100"):
        sample_agent_params(study.ask(), n_envs=1, total_timesteps=100)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):  # a rollout that is not a power of two: the batch still divides it
        params = sample_agent_params(study.ask(), n_envs=3, total_timesteps=4096)
        assert (params["n_steps"] * 3) % params["batch_size"] == 0


def _tune_in_process(in_process, *args: str) -> subprocess.CompletedProcess:
    """agents.tune's ``main`` through ``run_cli`` in this process (``tests/helpers.InProcess``)."""
    from cli.tune import main

    return in_process(main, ["--config", str(ROOT / "configs" / "quick.yaml"), *args],
                      "agents.tune")


@pytest.mark.parametrize(("storage", "message"), [
    ("notaurl", "--storage 'notaurl': not a database URL"),
    ("sqlite:////no/such/folder/optuna.db", "folder /no/such/folder does not exist"),
    ("oracle+nodriver://x@h/db", "unknown database 'oracle+nodriver'"),
    ("postgresql://nobody@127.0.0.1:1/optuna", "storage postgresql+psycopg2://nobody@127.0.0.1:1"
                                               "/optuna: cannot open"),
])
def test_bad_storage_is_one_line_before_anything_is_written(tmp_path, in_process, storage,
                                                            message):
    """The postgresql:// case reaches the server (refused): the driver is installed. In this
    process; test_two_workers_share_one_postgresql_study opens the driver in real processes."""
    args = ("--trials", "1", "--storage", storage, "--out", str(tmp_path / "out"))
    out = _tune_in_process(in_process, *args)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "No module named" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "out").exists()


def test_too_small_budget_is_refused_before_the_study_starts(tmp_path, in_process):
    out = _tune_in_process(in_process, "--trials", "2", "--timesteps", "100", "--out",
                           str(tmp_path / "out"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--timesteps 100: too small for two rollouts" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "out").exists()


KILLABLE_WORKER = """
import sys, time
from agents.tune import optimize
url, trials, marker, sleep_s = sys.argv[1:5]

def objective(trial):
    open(marker, "a").close()
    time.sleep(float(sleep_s))
    return trial.suggest_float("x", -1.0, 1.0)

optimize("restart", url, int(trials), objective)
"""


def test_a_killed_trial_is_failed_on_restart_and_not_counted(tmp_path):
    """A worker killed mid-trial leaves it 'running'; the rerun marks it failed and runs the
    number of trials asked for. Earlier failed trials (a bad budget) do not count either."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="restart", storage=url, direction="maximize")
    poisoned = optuna.load_study(study_name="restart", storage=url)
    for _ in range(2):
        poisoned.tell(poisoned.ask(), state=optuna.trial.TrialState.FAIL)
    marker = tmp_path / "started"
    worker = subprocess.Popen([sys.executable, "-c", KILLABLE_WORKER, url, "3", str(marker),
                               "600"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()
        time.sleep(0.1)
    worker.kill()
    worker.wait(timeout=30)
    states = [t.state for t in optuna.load_study(study_name="restart", storage=url).trials]
    assert states.count(optuna.trial.TrialState.RUNNING) == 1
    rerun = subprocess.run([sys.executable, "-c", KILLABLE_WORKER, url, "3", str(marker), "0"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "left running by a worker that is gone" in rerun.stderr
    states = [t.state for t in optuna.load_study(study_name="restart", storage=url).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.FAIL) == 3
    assert optuna.trial.TrialState.RUNNING not in states


def test_warning_when_the_best_trial_does_not_beat_a_baseline_or_cash():
    assert below_baselines(0.8, {"cash": 0.0, "iron_condor": 0.5}) is None
    beaten = below_baselines(0.3, {"cash": 0.0, "iron_condor": 0.5})
    assert "below the best baseline's (iron_condor 0.500)" in beaten
    negative = below_baselines(-0.2, {"cash": 0.0, "random": -1.0})
    assert "below cash (0)" in negative and "random" not in negative
    both = below_baselines(-0.2, {"cash": 0.0, "short_put_spread": 0.1})
    assert "short_put_spread 0.100" in both and "cash (0)" in both


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
    url = f"postgresql://optuna@127.0.0.1:{port}/postgres"  # as the README writes it
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

        engine = sqlalchemy.create_engine(storage_url(url))
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
    study = optuna.load_study(study_name="shared", storage=storage_url(postgres_url))
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
@pytest.mark.slow  # the heaviest fast test (20-60 s); fast cover of the study's mechanics: the
# PostgreSQL workers, the killed trial and the warning above; `make test-slow` (and CI) run it
def test_tiny_search_on_the_quick_config_feeds_train(tmp_path):
    """The quick config with one forecaster and shorter segments (2014 to train, a quarter each
    to validate and test, data to mid-2015): the search and the training behave the same on
    any window, in half the time of the config's own 2014-2018."""
    fast = ["--set", "forecast.members=[vol_rw]", "--set", "forecast.references=[random_walk]",
            "--set", f"forecast.cache_dir={tmp_path / 'cache'}", "--set", "train.n_envs=2",
            "--set", "data.end=2015-06-30", "--set", "segments.train.end=2014-12-31",
            "--set", "segments.valid={start: 2015-01-01, end: 2015-03-31}",
            "--set", "segments.test={start: 2015-04-01, end: 2015-06-30}",
            "--set", "forecast.conformal.select_end=2015-03-31",
            "--set", "env.episode_length_bars=40"]
    out = tmp_path / "tune"
    tune = subprocess.run(
        [sys.executable, "-m", "agents.tune", "--config", "configs/quick.yaml", "--trials", "2",
         "--seeds-per-trial", "2", "--timesteps", "256", "--eval-every-rollouts", "1",
         "--out", str(out), "--no-progress", *fast],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert tune.returncode == 0, tune.stderr[-3000:]
    assert tune.stdout.count("validation Sharpe") >= 2  # one line per trial, then the best
    assert "trial 0 " in tune.stdout and "trial 1 " in tune.stdout and "n_steps=" in tune.stdout
    summary = json.loads((out / "tune_summary.json").read_text())
    assert set(summary["baseline_validation_sharpes"]) >= {"cash", "short_put_spread"}
    assert (summary["warning"] is None) == (summary["best_validation_sharpe"] >= max(
        0.0, *summary["baseline_validation_sharpes"].values()))
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
