"""The learnability suite's config (:mod:`agents.learnability`), resolved from its YAML."""

from __future__ import annotations

from agents.learnability import SUITE_CONFIG, SuiteSettings, suite_overrides
from config import ExperimentConfig, load_config

__all__ = ["suite_config"]


def suite_config(settings: SuiteSettings, n_bars: int) -> ExperimentConfig:
    """The quick config on ``n_bars`` synthetic dates with a flat surface (the markets' own
    pricing) and ``settings.overrides``."""
    return load_config(SUITE_CONFIG, suite_overrides(settings, n_bars))
