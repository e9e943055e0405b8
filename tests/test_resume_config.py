"""``--resume`` compares the run's saved config with the command's: a setting added to the
project after the run was saved (absent from its config.yaml) counts as its default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agents.training import TrainingError, _check_same_config
from config import load_config

QUICK = Path(__file__).resolve().parents[1] / "configs" / "quick.yaml"


def _saved(tmp_path: Path, tree: dict) -> Path:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree))
    return tmp_path


def test_a_setting_missing_from_an_older_run_is_its_default(tmp_path):
    cfg = load_config(QUICK)
    tree = cfg.model_dump(mode="json")
    del tree["forecast"]["attention"]  # a run saved before the attention member existed
    _check_same_config(cfg, _saved(tmp_path, tree))


def test_a_changed_setting_is_still_named(tmp_path):
    cfg = load_config(QUICK)
    tree = cfg.model_dump(mode="json")
    del tree["forecast"]["attention"]
    tree["env"]["risk_per_trade_fraction"] = 0.5
    with pytest.raises(TrainingError, match="env.risk_per_trade_fraction"):
        _check_same_config(cfg, _saved(tmp_path, tree))
