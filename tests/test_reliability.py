"""Reliability: bad input at every layer is one clear line and exit 2 with nothing written; runs
resume exactly; model files are checked against their recorded SHA-256; Ctrl-C checkpoints.

The bad-input cases call each entry point's ``main`` through ``common.cli.run_cli`` in-process
(the same path as the command line, without a new interpreter per case); one case per entry
point also runs as a real subprocess.
"""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import train as train_cli
from agents.train_run import seeds_to_train
from cli.forecasters import main as forecasters_main
from common.cli import run_cli
from common.errors import UserInputError
from common.runfolder import (
    ModelFileModifiedError,
    RunFolderLockedError,
    RunLock,
    record_model_sha256,
    verify_model_sha256,
)
from data.__main__ import main as data_main
from tests.helpers import ROOT
from tests.helpers import tiny_config as cli_tiny_config


def tiny_config(cache_dir: Path) -> dict:
    """The shared tiny config with two envs, checkpoints every rollout and two baselines."""
    config = cli_tiny_config(cache_dir)
    config["train"].update(checkpoint_every_steps=64, n_envs=2)
    config.pop("eval", None)
    config["baselines"] = {"names": ["cash", "short_put_spread"]}
    return config


def invoke(main, argv: list[str], capsys) -> tuple[int, str]:
    """Run an entry point as the command line would; (exit status, stderr)."""
    try:
        code = run_cli(main, argv, prog="cli")
    except SystemExit as exc:  # argparse's own usage errors exit 2 themselves
        code = exc.code
    return code, capsys.readouterr().err


def assert_clean_failure(code: int, err: str, message: str, *unwritten: Path) -> None:
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    for path in unwritten:
        assert not path.exists(), f"{path} was written"


# ---------------------------------------------------------------- config layer (train.py)
def _set(path: list[str], value):
    def mutate(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return mutate


CONFIG_CASES = [
    ("seed_negative", _set(["seed"], -1), "seed"),
    ("seed_too_big", _set(["seed"], 2**32), "seed"),
    ("seed_text", _set(["seed"], "zero"), "seed"),
    ("seeds_duplicate", _set(["train", "seeds"], [1, 1]), "duplicate seed"),
    ("seeds_empty", _set(["train", "seeds"], []), "train.seeds"),
    ("seeds_negative", _set(["train", "seeds"], [0, -3]), "train.seeds"),
    ("seeds_too_big", _set(["train", "seeds"], [2**32]), "train.seeds"),
    ("unknown_env_key", _set(["env", "leverage"], 3), "unknown key 'env.leverage'"),
    ("unknown_top_key", _set(["colour"], "blue"), "unknown key 'colour'"),
    ("unknown_train_key", _set(["train", "epochs"], 3), "unknown key 'train.epochs'"),
    ("n_steps_text", _set(["agent", "n_steps"], "many"), "agent.n_steps"),
    ("n_steps_zero", _set(["agent", "n_steps"], 0), "agent.n_steps"),
    ("learning_rate_negative", _set(["agent", "learning_rate"], -1.0), "agent.learning_rate"),
    ("algo_unknown", _set(["agent", "algo"], "dqn"), "agent.algo"),
    ("vec_env_unknown", _set(["train", "vec_env"], "gpu"), "train.vec_env"),
    ("total_timesteps_zero", _set(["train", "total_timesteps"], 0), "train.total_timesteps"),
    ("source_unknown", _set(["data", "source"], "bloomberg"), "data.source"),
    ("clip_segments_text", _set(["data", "clip_segments"], "maybe"), "data.clip_segments"),
    ("data_start_impossible", _set(["data", "start"], "2014-02-30"), "data.start"),
    ("data_end_not_a_date", _set(["data", "end"], "yesterday"), "data.end"),
    ("segment_end_before_start",
     _set(["segments", "test"], {"start": "2016-06-30", "end": "2016-01-01"}), "before start"),
    ("segments_overlap", _set(["segments", "valid", "start"], "2013-01-01"),
     "segments must be ordered and disjoint"),
    ("segment_missing_end", _set(["segments", "test"], {"start": "2016-01-01"}),
     "segments.test.end"),
    ("segment_fully_outside", _set(["segments", "test"], {"start": "2030-01-01",
                                                          "end": "2030-12-31"}),
     "segments.test 2030-01-01..2030-12-31 lies outside the data"),
    ("segment_partly_outside", _set(["segments", "test"], {"start": "2016-01-01",
                                                           "end": "2019-06-30"}),
     "segments.test 2016-01-01..2019-06-30 lies partly outside the data"),
    ("segment_partly_before", lambda c: c["data"].update(start="2014-06-01"),
     "segments.train 2014-01-01..2015-06-30 lies partly outside the data"),
    ("tuned_params_missing", _set(["forecast", "tuned_params_path"], "no_such_params.yaml"),
     "tuned_params_path"),
    # issue 24 item 3: values that validated and then crashed after the run folder was started
    ("equity_infinite", _set(["env", "starting_equity_usd"], float("inf")),
     "expected finite numbers: env.starting_equity_usd (got inf)"),
    ("equity_huge", _set(["env", "starting_equity_usd"], 1e300),
     "env.starting_equity_usd: 1e+300 is above the limit 1e+12"),
    ("learning_rate_nan", _set(["agent", "learning_rate"], float("nan")), "agent.learning_rate"),
    ("n_steps_huge", _set(["agent", "n_steps"], 99999999999999999999),
     "agent.n_steps: 99999999999999999999 is above the limit"),
    ("n_envs_huge", _set(["train", "n_envs"], 100000), "train.n_envs: 100000 is above the limit"),
    ("rollout_huge", lambda c: (c["agent"].update(n_steps=1_000_000), c["train"].update(n_envs=8)),
     "steps per rollout is above the limit"),
    ("batch_not_dividing_rollout", _set(["agent", "batch_size"], 48),
     "agent.batch_size 48 must divide the rollout agent.n_steps x train.n_envs = 64 x 2 = 128"),
    # issue 24 item 18: a segment inside the data with no session is not "outside the data"
    ("segment_on_a_weekend", _set(["segments", "valid"], {"start": "2015-07-04",
                                                          "end": "2015-07-05"}),
     "segments.valid 2015-07-04..2015-07-05 holds no bar of the data"),
]


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_value(tmp_path, capsys, mutate, message):
    config = tiny_config(tmp_path / "cache")
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    code, err = invoke(train_cli.main, ["--config", str(path), "--run-dir", str(run_dir),
                                        "--no-progress"], capsys)
    assert_clean_failure(code, err, message, run_dir, tmp_path / "cache")


def _good_yaml(tmp_path: Path) -> str:
    return yaml.safe_dump(tiny_config(tmp_path / "cache"), sort_keys=False)


YAML_TEXT_CASES = [
    ("duplicate_top_key", lambda t: t + "seed: 3\nseed: 4\n", "key 'seed' given twice"),
    ("duplicate_nested_key", lambda t: t.replace("agent:\n", "agent:\n  n_steps: 32\n", 1),
     "key 'n_steps' given twice"),
    ("impossible_date", lambda t: t.replace("start: '2014-01-01'", "start: 2014-02-30"),
     "'2014-02-30' is not a valid date"),
    ("impossible_month", lambda t: t.replace("end: '2016-06-30'", "end: 2016-13-01"),
     "'2016-13-01' is not a valid date"),
    ("unclosed_bracket", lambda t: t + "extra: [1, 2\n", "not valid YAML"),
    ("bad_indentation", lambda t: t + "x:\n  a: 1\n b: 2\n", "not valid YAML"),
    ("top_level_list", lambda t: "- 1\n- 2\n", "expected a mapping at the top level"),
    ("tab_character", lambda t: t + "y:\n\t- 1\n", "not valid YAML"),
]


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in YAML_TEXT_CASES],
                         ids=[c[0] for c in YAML_TEXT_CASES])
def test_bad_config_text(tmp_path, capsys, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(_good_yaml(tmp_path)))
    run_dir = tmp_path / "run"
    code, err = invoke(train_cli.main, ["--config", str(path), "--run-dir", str(run_dir)], capsys)
    assert_clean_failure(code, err, message, run_dir)
    assert str(path) in err or "line" in err


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"])
def test_empty_config_file_is_named_empty(tmp_path, capsys, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    code, err = invoke(train_cli.main, ["--config", str(path), "--run-dir",
                                        str(tmp_path / "run")], capsys)
    assert_clean_failure(code, err, f"{path}: the config file is empty", tmp_path / "run")
    assert "Field required" not in err


def test_config_file_not_utf8_and_folder_and_missing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    for config, message in ((bad, "not UTF-8"), (tmp_path, "is a folder"),
                            (tmp_path / "nope.yaml", "no such config file")):
        code, err = invoke(train_cli.main, ["--config", str(config), "--run-dir", str(run_dir)],
                           capsys)
        assert_clean_failure(code, err, message, run_dir)


def test_tuned_params_with_unknown_member_is_named(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("forecast:\n  svm: {C: 1}\n")
    config = tiny_config(tmp_path / "cache")
    config["forecast"]["tuned_params_path"] = "params.yaml"  # relative to the config file
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    code, err = invoke(train_cli.main, ["--config", str(path), "--run-dir",
                                        str(tmp_path / "run")], capsys)
    assert_clean_failure(code, err, "unknown member 'svm'", tmp_path / "run")


# ---------------------------------------------------------------- command-line layer
CLI_CASES = [
    ("set_without_equals", ["--set", "agent.n_steps"], "--set 'agent.n_steps'"),
    ("set_invalid_yaml", ["--set", "agent.net_arch=[64,"], "--set 'agent.net_arch=[64,'"),
    ("set_impossible_date", ["--set", "segments.train.start=2014-02-30"], "2014-02-30"),
    ("set_unknown_key", ["--set", "agent.colour=red"], "unknown key 'agent.colour'"),
    ("set_into_value", ["--set", "agent.n_steps.x=1"], "'agent.n_steps' is not a section"),
    ("set_empty_key_part", ["--set", "agent..n_steps=1"], "empty key part"),
    ("set_duplicate_in_value", ["--set", "agent={n_steps: 8, n_steps: 9}"], "given twice"),
    ("seed_negative", ["--seed", "-1"], "--seed"),
    ("seed_too_big", ["--seed", str(2**32)], "--seed"),
    ("seed_not_int", ["--seed", "abc"], "--seed"),
    ("seeds_duplicate", ["--seeds", "1", "1"], "--seeds: seed(s) [1] given more than once"),
    ("seeds_negative", ["--seeds", "3", "-2"], "--seeds"),
    ("seed_and_seeds", ["--seed", "1", "--seeds", "2", "3"], "not allowed with argument"),
    ("total_timesteps_zero", ["--total-timesteps", "0"], "--total-timesteps"),
    ("total_timesteps_text", ["--total-timesteps", "lots"], "--total-timesteps"),
    ("unknown_flag", ["--frobnicate"], "--frobnicate"),
    ("resume_without_checkpoint", ["--resume"], "no checkpoint"),
]


@pytest.mark.parametrize(("extra", "message"), [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_bad_train_flags(tmp_path, capsys, extra, message):
    path = tmp_path / "tiny.yaml"
    path.write_text(_good_yaml(tmp_path))
    run_dir = tmp_path / "run"
    code, err = invoke(train_cli.main, ["--config", str(path), "--run-dir", str(run_dir),
                                        "--no-progress", *extra], capsys)
    assert_clean_failure(code, err, message, run_dir, tmp_path / "cache")


def test_train_without_config_flag_is_a_usage_error(capsys):
    code, err = invoke(train_cli.main, [], capsys)
    assert_clean_failure(code, err, "--config")


def test_train_refuses_a_folder_with_a_model_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(_good_yaml(tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.zip").write_bytes(b"not a model")
    code, err = invoke(train_cli.main, ["--config", str(path), "--run-dir", str(run_dir)], capsys)
    assert_clean_failure(code, err, "already holds a trained model")
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.zip"]


FORECASTER_CASES = [
    ("missing_config", lambda p: ["--config", str(p.parent / "nope.yaml")], "no such config file"),
    ("bad_set", lambda p: ["--config", str(p), "--set", "forecast.n_jobs=[1,"], "--set"),
    ("unknown_forecast_key", lambda p: ["--config", str(p), "--set", "forecast.depth=3"],
     "unknown key 'forecast.depth'"),
    ("bad_segment", lambda p: ["--config", str(p), "--segment", "holdout"], "--segment"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in FORECASTER_CASES],
                         ids=[c[0] for c in FORECASTER_CASES])
def test_bad_forecasters_input(tmp_path, capsys, argv, message):
    path = tmp_path / "tiny.yaml"
    path.write_text(_good_yaml(tmp_path))
    out = tmp_path / "out"
    code, err = invoke(forecasters_main, [*argv(path), "--out", str(out)], capsys)
    assert_clean_failure(code, err, message, out, tmp_path / "cache")


# ---------------------------------------------------------------- CSV layer (python -m data)
HEADER = "date,open,high,low,close,volume\n"


def _rows(*dates: str, volume: str = "1000") -> str:
    return "".join(f"{d},100,101,99,100.5,{volume}\n" for d in dates)


CSV_CASES = [
    ("no_date_column", "day,open,high,low,close,volume\n2020-01-02,1,2,0.5,1.5,1\n",
     "no date column"),
    ("missing_close", "date,open,high,low,volume\n2020-01-02,1,2,0.5,1\n",
     "missing column(s) ['close']"),
    ("two_close_columns", "date,open,high,low,close,last,volume\n2020-01-02,1,2,0.5,1.5,1.5,1\n",
     "both map to 'close'"),
    ("empty_file", "", "could not parse as CSV"),
    ("ambiguous_day_month", HEADER + _rows("03/01/2020", "04/01/2020"), "--date-format"),
    ("mixed_day_month_order", HEADER + _rows("13/01/2020", "01/14/2020"),
     "mixes day-first (line 2) and month-first (line 3)"),
    ("unparseable_date", HEADER + _rows("2020-01-02", "notadate"), "line(s) 3"),
    ("impossible_date", HEADER + _rows("2020-02-28", "2020-02-30"), "'2020-02-30'"),
    ("impossible_yyyymmdd", HEADER + _rows("20200228", "20200230"), "unparseable"),
    ("mixed_offsets", HEADER + _rows("2020-01-02T21:00:00Z", "2020-01-03 16:00:00"),
     "mixes stamps with and without a UTC offset"),
    ("nan_volume", HEADER + _rows("2020-01-02") + "2020-01-03,100,101,99,100.5,\n"
     + _rows("2020-01-06"), "column 'volume' is empty (NaN) on line(s) 3"),
    ("text_volume", HEADER + _rows("2020-01-02", volume="lots"), "column 'volume'"),
    ("text_close", HEADER + "2020-01-02,100,101,99,n/a,1000\n", "column 'close'"),
    ("negative_price", HEADER + "2020-01-02,-1,101,-2,100.5,1000\n", "non-positive"),
    ("high_below_close", HEADER + "2020-01-02,100,100,99,100.5,1000\n", "column 'high'"),
    ("negative_volume", HEADER + _rows("2020-01-02", volume="-5"), "column 'volume'"),
    ("duplicate_dates", HEADER + _rows("2020-01-02", "2020-01-02"), "duplicated"),
    ("out_of_order", HEADER + _rows("2020-01-03", "2020-01-02"), "out of order"),
    ("mixed_iv_units", "date,open,high,low,close,volume,vix\n"
     "2020-01-02,100,101,99,100.5,1000,14.5\n2020-01-03,100,101,99,100.5,1000,0.15\n",
     "column 'iv_index' mixes units"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in CSV_CASES],
                         ids=[c[0] for c in CSV_CASES])
def test_bad_csv(tmp_path, capsys, text, message):
    csv = tmp_path / "bars.csv"
    csv.write_text(text)
    out = tmp_path / "out"
    code, err = invoke(data_main, ["--source", "csv", "--path", str(csv), "--out", str(out)],
                       capsys)
    assert_clean_failure(code, err, message, out)
    assert str(csv) in err


DATA_FLAG_CASES = [
    ("csv_missing_file", ["--source", "csv", "--path", "{tmp}/none.csv"], "no such file"),
    ("csv_path_is_folder", ["--source", "csv", "--path", "{tmp}"], "is a folder"),
    ("csv_without_path", ["--source", "csv"], "csv source needs path"),
    ("unknown_source", ["--source", "bloomberg"], "--source"),
    ("start_impossible", ["--start", "2010-02-30"], "start '2010-02-30'"),
    ("end_not_a_date", ["--end", "someday"], "end 'someday'"),
    ("date_format_without_csv", ["--date-format", "%d/%m/%Y"], "--date-format"),
    ("date_format_not_matching", ["--source", "csv", "--path", "{tmp}/iso.csv",
                                  "--date-format", "%d/%m/%Y"], "format '%d/%m/%Y'"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in DATA_FLAG_CASES],
                         ids=[c[0] for c in DATA_FLAG_CASES])
def test_bad_data_flags(tmp_path, capsys, argv, message):
    (tmp_path / "iso.csv").write_text(HEADER + _rows("2020-01-02", "2020-01-03"))
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = invoke(data_main, [*argv, "--out", str(out)], capsys)
    assert_clean_failure(code, err, message, out)


def test_debug_flag_shows_the_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "data", "--source", "csv", "--path",
                          str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "--debug"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Traceback" in out.stderr and "no such file" in out.stderr


@pytest.mark.parametrize("module", ["data", "forecasters", "train"])
def test_each_cli_reports_one_line_in_a_real_process(tmp_path, module):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\nseed: 2\n")
    argv = {"data": ["-m", "data", "--source", "csv", "--path", str(tmp_path / "none.csv"),
                     "--out", str(tmp_path / "out")],
            "forecasters": ["-m", "forecasters", "--config", str(path), "--out",
                            str(tmp_path / "out")],
            "train": [str(ROOT / "train.py"), "--config", str(path), "--run-dir",
                      str(tmp_path / "out")]}[module]
    out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and ("none.csv" in lines[0] or "given twice" in lines[0]), out.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- CSV dates read correctly
def test_csv_dates_in_every_supported_form(tmp_path):
    from data.csv_source import load_csv

    cases = {
        "day_first": (_rows("13/01/2020", "14/01/2020"), None),
        "month_first": (_rows("01/13/2020", "01/14/2020"), None),
        "yyyymmdd": (_rows("20200113", "20200114"), None),
        "explicit_format": (_rows("03/01/2020", "04/01/2020").replace("03/01", "13/01")
                            .replace("04/01", "14/01"), "%d/%m/%Y"),
    }
    for name, (rows, fmt) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(HEADER + rows)
        frame = load_csv(path, date_format=fmt)
        assert list(frame.index) == [pd.Timestamp("2020-01-13"), pd.Timestamp("2020-01-14")], name
    # Aware stamps are instants: 21:00 UTC on 2020-01-02 is the 16:00 New York close.
    path = tmp_path / "aware.csv"
    path.write_text(HEADER + _rows("2020-01-02T21:00:00Z", "2020-01-03T16:00:00-05:00",
                                   "2020-07-01T20:00:00+00:00"))
    stamps = list(load_csv(path).index)
    assert stamps == [pd.Timestamp("2020-01-02 16:00"), pd.Timestamp("2020-01-03 16:00"),
                      pd.Timestamp("2020-07-01 16:00")]  # daylight saving handled


def test_clip_segments_turns_a_partial_segment_into_a_warning(caplog):
    import datetime as dt

    from data import check_segments_covered

    index = pd.bdate_range("2015-01-01", "2015-12-31")
    segments = {"test": (dt.date(2015, 6, 1), dt.date(2016, 6, 30))}
    with pytest.raises(UserInputError, match="data.clip_segments"):
        check_segments_covered(index, segments)
    check_segments_covered(index, segments, clip=True)
    assert "partly outside" in caplog.text
    # A holiday at the edge is not "outside": New Year's Day before the first session.
    check_segments_covered(pd.bdate_range("2015-01-02", "2015-12-31"),
                           {"train": (dt.date(2015, 1, 1), dt.date(2015, 12, 31))})


# ---------------------------------------------------------------- run folder: lock and hashes
def test_run_lock_refuses_a_live_writer_and_takes_over_a_stale_one(tmp_path):
    with RunLock(tmp_path, ["train.py"]) as lock:
        held = json.loads(lock.path.read_text())
        assert held["pid"] == os.getpid() and held["command"] == "train.py"
        with pytest.raises(RunFolderLockedError, match=f"in use by PID {os.getpid()}"):
            RunLock(tmp_path, "second").acquire()
    assert not (tmp_path / ".lock").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    held["pid"] = dead.pid
    (tmp_path / ".lock").write_text(json.dumps(held))
    with RunLock(tmp_path, "third") as lock:
        assert lock.stale["pid"] == dead.pid
        assert json.loads(lock.path.read_text())["command"] == "third"


def test_model_hash_is_recorded_and_a_changed_file_refused(tmp_path):
    model = tmp_path / "model.zip"
    model.write_bytes(b"weights")
    (tmp_path / "provenance.json").write_text(json.dumps({"data": {"rows": 3}}))
    digest = record_model_sha256(tmp_path, model)
    document = json.loads((tmp_path / "provenance.json").read_text())
    assert document["model_sha256"] == {"model.zip": digest} and document["data"]["rows"] == 3
    assert verify_model_sha256(tmp_path, model) == digest
    model.write_bytes(b"weights, changed")
    with pytest.raises(ModelFileModifiedError, match="--allow-modified"):
        verify_model_sha256(tmp_path, model)
    assert verify_model_sha256(tmp_path, model, allow_modified=True) != digest
    other = tmp_path / "other.zip"
    other.write_bytes(b"x")
    with pytest.raises(ModelFileModifiedError, match="no SHA-256 recorded"):
        verify_model_sha256(tmp_path, other)


# ---------------------------------------------------------------- exact resume, Ctrl-C, reuse
def _train_cmd(config: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--run-dir",
            str(run_dir), "--no-progress", *extra]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _stop_after_checkpoint(cmd: list[str], run_dir: Path, steps: int, sig: int
                           ) -> subprocess.CompletedProcess:
    """Start training, and send ``sig`` once the checkpoint at ``steps`` is complete."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    marker = run_dir / "checkpoints" / f"ckpt_{steps}_steps.state.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "training ended before its first checkpoint was seen"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _policy_params(model_zip: Path) -> dict:
    import torch

    with zipfile.ZipFile(model_zip) as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu")


def _test_metrics(run_dir: Path) -> dict:
    from agents import performance_metrics, run_episode
    from agents.checkpoint import load_policy
    from config import load_config
    from envs import load_env_inputs, make_env

    cfg = load_config(run_dir / "config.yaml")
    panel = pd.read_parquet(run_dir / "forecasts" / "panel.parquet")
    env = make_env(cfg, "test", mode="eval", inputs=load_env_inputs(cfg, panel_long=panel))
    policy, _ = load_policy(run_dir, cfg, "final", env)
    return performance_metrics(run_episode(env, policy), env.panel.bars_per_year)


@pytest.fixture(scope="module")
def resume_workspace(tmp_path_factory, forecast_cache):
    base = tmp_path_factory.mktemp("resume")
    config = tiny_config(forecast_cache)  # the tiny run's forecasts: computed once
    config["train"]["total_timesteps"] = 512
    (base / "tiny.yaml").write_text(yaml.safe_dump(config))
    straight = base / "straight"
    out = _run(_train_cmd(base / "tiny.yaml", straight))
    assert out.returncode == 0, out.stderr[-3000:]
    return base, straight


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(resume_workspace):
    base, straight = resume_workspace
    run_dir = base / "killed"
    killed = _stop_after_checkpoint(_train_cmd(base / "tiny.yaml", run_dir), run_dir, 128,
                                    signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert not (run_dir / "model.zip").exists(), "the run finished before it was killed"
    assert (run_dir / ".lock").exists()  # left behind by the killed process: stale
    resumed = _run(_train_cmd(base / "tiny.yaml", run_dir, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stale lock" in resumed.stderr
    summary = json.loads((run_dir / "train_summary.json").read_text())
    reference = json.loads((straight / "train_summary.json").read_text())
    assert summary["resumed_from"] is not None
    assert summary["timesteps"] == reference["timesteps"] == 512
    a, b = _policy_params(straight / "model.zip"), _policy_params(run_dir / "model.zip")
    assert a.keys() == b.keys()
    max_abs_diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert max_abs_diff == 0.0
    assert summary["validation_history"] == reference["validation_history"]
    with np.load(straight / "vecnormalize.npz") as x, np.load(run_dir / "vecnormalize.npz") as y:
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key])
    assert _test_metrics(run_dir) == _test_metrics(straight)


def test_a_run_deciding_every_3_bars_resumes_exactly_after_a_kill(resume_workspace):
    """``agent.decision_every_bars``: a step spans 3 bars, and the checkpoint's replay record
    every bar, so a killed run resumes to the uninterrupted run's weights and test result."""
    base, _ = resume_workspace
    config = yaml.safe_load((base / "tiny.yaml").read_text())
    config["agent"]["decision_every_bars"] = 3
    (base / "tiny_every3.yaml").write_text(yaml.safe_dump(config))
    straight, run_dir = base / "every3_straight", base / "every3_killed"
    out = _run(_train_cmd(base / "tiny_every3.yaml", straight))
    assert out.returncode == 0, out.stderr[-3000:]
    killed = _stop_after_checkpoint(_train_cmd(base / "tiny_every3.yaml", run_dir), run_dir, 128,
                                    signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    resumed = _run(_train_cmd(base / "tiny_every3.yaml", run_dir, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _policy_params(straight / "model.zip"), _policy_params(run_dir / "model.zip")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    assert _test_metrics(run_dir) == _test_metrics(straight)
    every_bar = _policy_params(base / "straight" / "model.zip")
    assert max(float((a[k] - every_bar[k]).abs().max()) for k in a) > 0.0


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_resume_finishes_identically(resume_workspace):
    base, straight = resume_workspace
    run_dir = base / "interrupted"
    # A rollout is n_steps x n_envs = 128 steps: the first boundary checkpoint is at 128.
    stopped = _stop_after_checkpoint(_train_cmd(base / "tiny.yaml", run_dir), run_dir, 128,
                                     signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "continue with --resume" in stopped.stderr
    assert not (run_dir / "model.zip").exists() and not (run_dir / ".lock").exists()
    resumed = _run(_train_cmd(base / "tiny.yaml", run_dir, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _policy_params(straight / "model.zip"), _policy_params(run_dir / "model.zip")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0


def test_second_run_reuses_the_finished_model_and_says_so(resume_workspace):
    base, straight = resume_workspace
    before = (straight / "model.zip").stat().st_mtime_ns
    out = _run(_train_cmd(base / "tiny.yaml", straight, "--resume"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "already trained" in out.stdout and "reusing it" in out.stderr
    assert (straight / "model.zip").stat().st_mtime_ns == before


def test_resume_refuses_a_modified_checkpoint_and_another_config(resume_workspace, tmp_path,
                                                                 in_process):
    """train.py's main in this process (the refusals are what it does, not the process's)."""
    base, straight = resume_workspace
    run_dir = tmp_path / "copy"
    import shutil

    shutil.copytree(straight, run_dir)
    (run_dir / "model.zip").unlink()
    (run_dir / "train_summary.json").unlink()
    latest = max((run_dir / "checkpoints").glob("ckpt_*_steps.zip"),
                 key=lambda p: int(p.name.split("_")[1]))
    with open(latest, "ab") as handle:
        handle.write(b"\0")
    out = in_process.train(*_train_cmd(base / "tiny.yaml", run_dir, "--resume")[2:])
    assert out.returncode == 2 and "SHA-256" in out.stderr and latest.name in out.stderr
    assert "Traceback" not in out.stderr
    other = copy.deepcopy(yaml.safe_load((base / "tiny.yaml").read_text()))
    other["agent"]["learning_rate"] = 1e-3
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    out = in_process.train(*_train_cmd(tmp_path / "other.yaml", run_dir, "--resume")[2:])
    assert out.returncode == 2 and "agent.learning_rate" in out.stderr


def test_tensorboard_validation_points_equal_the_summary(resume_workspace):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, straight = resume_workspace
    acc = EventAccumulator(str(next((straight / "tb").rglob("events.out.tfevents.*")).parent))
    acc.Reload()
    summary = json.loads((straight / "train_summary.json").read_text())
    history = summary["validation_history"]
    for tag, key in (("eval/sharpe", "sharpe"), ("eval/sortino", "sortino"),
                     ("eval/win_rate", "win_rate")):
        points = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [p[0] for p in points] == [row["timesteps"] for row in history], tag
        np.testing.assert_allclose([p[1] for p in points], [row[key] for row in history],
                                   rtol=1e-6, equal_nan=True)
    assert history[-1]["timesteps"] == summary["timesteps"]  # the last one is written too
    tags = set(acc.Tags()["scalars"])
    for tag in ("env/invalid_action_rate", "env/margin_used_pct", "env/episode_return_pct",
                "env/action_share/hold", "eval/baseline_sharpe/cash",
                "eval/baseline_sharpe/short_put_spread"):
        assert tag in tags, (tag, sorted(tags))
    assert "rollout/episode_return_pct" not in tags
    shares = [acc.Scalars(t)[0].value for t in tags if t.startswith("env/action_share/")]
    assert sum(shares) == pytest.approx(1.0)
    assert summary["baseline_validation_sharpe"]["cash"] == 0.0
    assert acc.PluginTagToContent("hparams")  # the HParams summary of the run


# ---------------------------------------------------------------- snapshots without pickles
def test_episode_replay_snapshot_restores_an_environment_exactly():
    import gymnasium as gym

    from agents.checkpoint import EpisodeRecorder

    rng = np.random.default_rng(0)
    original = EpisodeRecorder(gym.make("CartPole-v1"))
    original.reset(seed=3)
    for action in rng.integers(0, 2, 8):
        original.step(int(action))
    original.reset()  # a second episode, started from the env's own RNG (no seed)
    for action in rng.integers(0, 2, 5):
        original.step(int(action))
    snapshot = json.loads(json.dumps(original.get_state()))  # survives plain JSON
    assert snapshot["kind"] == "replay" and snapshot["seed"] is None
    copy_env = EpisodeRecorder(gym.make("CartPole-v1"))
    copy_env.reset(seed=99)
    copy_env.set_state(snapshot)
    for action in rng.integers(0, 2, 6):
        a, b = original.step(int(action)), copy_env.step(int(action))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
    np.testing.assert_array_equal(original.reset()[0], copy_env.reset()[0])  # same RNG after


def test_normalisation_statistics_round_trip_through_npz(tmp_path):
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from agents.checkpoint import load_vecnormalize, save_vecnormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]), norm_reward=False)
    venv.seed(0)
    venv.reset()
    for _ in range(50):
        venv.step(np.array([1]))
    path = save_vecnormalize(venv, tmp_path / "stats.npz")
    with np.load(path, allow_pickle=False) as data:  # plain arrays, no pickle needed
        assert {"obs_mean", "obs_var", "obs_count", "clip_obs"} <= set(data.files)
    loaded = load_vecnormalize(path, DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    assert not loaded.training and not loaded.norm_reward
    obs = np.array([[0.1, -0.2, 0.03, 0.4]])
    np.testing.assert_array_equal(loaded.normalize_obs(obs), venv.normalize_obs(obs))


# ---------------------------------------------------------------- adapters and invariants
def test_step_metrics_read_the_step_info_and_a_wrappers_plain_copy_of_it():
    from agents.callbacks import step_metrics
    from envs.step_info import StepInfo

    def info(invalid, open_positions):
        return StepInfo.slim(
            equity_usd=100_000.0, cash_usd=90_000.0, margin_used_usd=5_000.0,
            invalid_action=invalid, action=3, open_positions=open_positions,
            delta_shares=-12.5, gamma_shares_per_usd=0.4, theta_usd_per_day=8.0,
            vega_usd_per_vol_point=-30.0, commission_usd=0.0, spread_usd=0.0,
            realized_pnl_usd=0.0, spot=400.0, atm_iv=0.2)

    metrics = step_metrics(info(None, 1))
    assert metrics.margin_used_usd == 5_000.0 and not metrics.invalid_action
    assert metrics.open_positions == 1.0
    assert metrics.greeks == {"delta_shares": -12.5, "gamma_shares_per_usd": 0.4,
                              "theta_usd_per_day": 8.0, "vega_usd_per_vol_point": -30.0}
    metrics = step_metrics(dict(info("no position to close", 2)))  # VecMonitor's copy
    assert metrics.invalid_action and metrics.open_positions == 2.0


@settings(max_examples=40, deadline=None)
@given(days=st.lists(st.integers(0, 3000), min_size=2, max_size=30, unique=True),
       order=st.sampled_from(["%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d", "%Y-%m-%d"]))
def test_csv_dates_parse_back_in_any_decidable_order(days, order):
    from data.csv_source import parse_dates

    dates = sorted(pd.Timestamp("2010-01-01") + pd.Timedelta(days=d) for d in days)
    text = pd.Series([d.strftime(order) for d in dates])
    decidable = order in ("%Y%m%d", "%Y-%m-%d") or any(d.day > 12 for d in dates)
    if decidable:
        assert list(parse_dates(text, "test.csv")) == dates
    else:
        with pytest.raises(UserInputError, match="--date-format"):
            parse_dates(text, "test.csv")
    assert list(parse_dates(text, "test.csv", date_format=order)) == dates


def test_the_configs_seeds_are_trained_unless_a_flag_says_otherwise():
    from config import load_config

    default = load_config(ROOT / "configs" / "default.yaml")
    assert seeds_to_train(default, None, None) == [0, 1, 2, 3, 4]
    assert seeds_to_train(default, 7, None) == [7]
    assert seeds_to_train(default, None, [3, 9]) == [3, 9]
    no_seeds = load_config({"seed": 5, "segments": {
        "train": {"start": "2014-01-01", "end": "2014-12-31"},
        "valid": {"start": "2015-01-01", "end": "2015-12-31"},
        "test": {"start": "2016-01-01", "end": "2016-12-31"}}})
    assert seeds_to_train(no_seeds, None, None) == [5]  # no train.seeds: the seed key


def test_output_folder_under_a_file_is_reported_with_its_path(tmp_path, capsys):
    (tmp_path / "iso.csv").write_text(HEADER + _rows("2020-01-02", "2020-01-03"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = invoke(data_main, ["--source", "csv", "--path", str(tmp_path / "iso.csv"),
                                   "--out", str(blocker / "out")], capsys)
    assert_clean_failure(code, err, str(blocker))


# ---------------------------------------------------------------- installation (issue 24, 17)
def test_install_of_the_project_is_quiet():
    """The project's own build, with the Makefile's pip flags, prints nothing: no setuptools
    licence-table warning, no progress bars (dependencies are not fetched: --no-deps)."""
    flags = next(line.split(":=", 1)[1].split() for line in
                 (ROOT / "Makefile").read_text().splitlines() if line.startswith("PIP_QUIET"))
    out = subprocess.run([sys.executable, "-m", "pip", "install", *flags, "--no-deps",
                          "--no-build-isolation", "--dry-run", "-e", str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


# ---------------------------------------------------------------- comparison (issue 24, 1 and 11)
def _result(name: str, equity: np.ndarray, start: str = "2016-01-04"):
    from agents.evaluation import EpisodeResult

    dates = pd.bdate_range(start, periods=len(equity), name="date")
    frame = pd.DataFrame({"equity_usd": equity}, index=dates)
    return EpisodeResult(name, frame, pd.DataFrame(), float(equity[0]), 0.0)


def test_cash_is_compared_and_a_flat_ppo_does_not_beat_it():
    """Cash is a baseline like any other; a PPO curve identical to it is no evidence (p = 1,
    where the SPA statistic of all-zero differences would say 0)."""
    from agents.eval_run import compare_with_baselines

    rng = np.random.default_rng(0)
    flat = np.full(120, 1e5)
    spread = 1e5 * np.cumprod(1 + rng.normal(0.0, 0.01, 120))
    results = {"ppo": _result("ppo", flat), "cash": _result("cash", flat),
               "short_put_spread": _result("short_put_spread", spread)}
    comparison, detail = compare_with_baselines(results, ["ppo"], ["cash", "short_put_spread"],
                                                252.0, 200, 0)
    assert comparison["compared"] == ["cash", "short_put_spread"]
    assert detail["spa_pvalue_per_baseline"]["cash"] == 1.0
    assert comparison["spa_pvalue"] == 1.0


def test_a_ruined_policy_is_compared_flat_after_its_last_bar():
    from agents.eval_run import compare_with_baselines, ruined_policies

    rng = np.random.default_rng(1)
    full = 1e5 * np.cumprod(1 + rng.normal(0.001, 0.01, 250))
    ruined = 1e5 * np.cumprod(1 + rng.normal(-0.01, 0.02, 234))
    results = {"ppo": _result("ppo", full), "random": _result("random", ruined),
               "cash": _result("cash", np.full(250, 1e5))}
    dates = results["ppo"].equity.index
    assert ruined_policies(results, dates[-1]) == {"random": str(dates[233].date())}
    comparison, _ = compare_with_baselines(results, ["ppo"], ["random", "cash"], 252.0, 200, 0,
                                           dates=dates)
    assert 0.0 <= comparison["spa_pvalue"] <= 1.0
