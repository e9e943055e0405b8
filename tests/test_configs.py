"""The shipped experiment configs that must stay in step with each other."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# What the development split may change: its name and its dates (below, also the end of the
# window on which the conformal tracking steps are chosen: the validation end, in both).
DEV_ONLY_KEYS = ("name", "segments")


def _without_dev_keys(tree: dict) -> dict:
    tree = {k: v for k, v in tree.items() if k not in DEV_ONLY_KEYS}
    tree["forecast"]["conformal"].pop("select_end")
    return tree


def test_the_development_split_is_the_default_config_two_years_earlier():
    """configs/dev_2015.yaml is where design choices are judged without touching default.yaml's
    test years: every setting but the dates must be the default's, or a choice made on it would
    not be a choice about the default config."""
    default = load_config(CONFIGS / "default.yaml")
    dev = load_config(CONFIGS / "dev_2015.yaml")
    assert _without_dev_keys(dev.model_dump(mode="json")) == \
        _without_dev_keys(default.model_dump(mode="json"))

    # Its test window ends before the default's test years start: nothing of 2017-2018 decides
    # anything judged on it (2015-2016 are the default's last training and validation years).
    assert dev.segments.test.end < default.segments.test.start
    assert dev.segments.test.end == date(2016, 12, 31)
    # Same lengths of history, validation and test, shifted by two years.
    for name in ("valid", "test"):
        d, s = dev.segments.get(name), default.segments.get(name)
        assert (d.start.year + 2, d.end.year + 2) == (s.start.year, s.end.year)
    assert dev.segments.train.start == default.segments.train.start
    # The conformal steps are chosen on forecasts up to each config's own validation end.
    for cfg in (default, dev):
        assert cfg.forecast.conformal.select_end == cfg.segments.valid.end


def test_the_quick_config_runs_the_shipped_learners_decision_settings():
    """The learnability suite (``bench/learnability.py``) and ``make run`` use the quick config's
    agent: it must decide and hold as the default config's does (``agent.decision_every_bars``,
    ``env.min_holding_bars``), or the suite would test a learner the project does not ship."""
    quick = load_config(CONFIGS / "quick.yaml")
    for name in ("default.yaml", "dev_2015.yaml"):
        shipped = load_config(CONFIGS / name)
        assert quick.agent.decision_every_bars == shipped.agent.decision_every_bars, name
        assert quick.env.min_holding_bars == shipped.env.min_holding_bars, name
    assert quick.agent.decision_every_bars > 1 and quick.env.min_holding_bars > 0
