"""Experiment configuration: one YAML per experiment, loaded into typed, strict models.

Every section rejects unknown keys with a message naming the key. ``load_config`` accepts a
YAML path or a dict, and ``--set key.sub=value`` style overrides (values parsed as YAML).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.config import AgentConfig, BaselinesConfig
from common.errors import UserInputError
from data.config import DataConfig
from envs.config import EnvConfig
from forecasters.config import ForecastConfig
from options.costs import CostConfig
from options.positions import MarginConfig
from options.surface import SurfaceConfig

__all__ = ["ConfigError", "ExperimentConfig", "Segments", "load_config", "parse_override"]


class ConfigError(UserInputError):
    """A config file or override is invalid; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Segment(_Section):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Segment:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Segments(_Section):
    """Date segments: train (PPO learns), valid (checkpoint selection), test (held out)."""

    train: Segment
    valid: Segment
    test: Segment

    @model_validator(mode="after")
    def _disjoint(self) -> Segments:
        if not (self.train.end < self.valid.start and self.valid.end < self.test.start):
            raise ValueError("segments must be ordered and disjoint: train < valid < test")
        return self

    def get(self, name: str) -> Segment:
        if name not in ("train", "valid", "test"):
            raise ConfigError(f"unknown segment '{name}'; expected train, valid or test")
        return getattr(self, name)


class OptionsConfig(_Section):
    """Volatility surface, trading costs and the naked-short margin rule."""

    surface: SurfaceConfig = SurfaceConfig()
    costs: CostConfig = CostConfig()
    margin: MarginConfig = MarginConfig()


class TrainConfig(_Section):
    total_timesteps: int = Field(20_000, ge=1)
    n_envs: int = Field(1, ge=1, description="vectorised environments per seed")
    vec_env: str = Field("dummy", pattern="^(dummy|subproc)$")
    seeds: list[int] = Field(default_factory=lambda: [0])
    checkpoint_every_steps: int = Field(10_000, ge=1)
    eval_every_steps: int = Field(5_000, ge=1)
    progress_bar: bool = True


class EvalConfig(_Section):
    segment: str = Field("test", pattern="^(train|valid|test)$")
    bootstrap_block_bars: int = Field(20, ge=1)
    bootstrap_samples: int = Field(2000, ge=100)


class ExperimentConfig(_Section):
    name: str = "experiment"
    seed: int = 0
    data: DataConfig = DataConfig()
    segments: Segments
    forecast: ForecastConfig = ForecastConfig()
    options: OptionsConfig = OptionsConfig()
    env: EnvConfig = EnvConfig()
    agent: AgentConfig = AgentConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"agent.learning_rate=1e-4"`` -> (["agent", "learning_rate"], 0.0001)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def _apply(raw: dict, path: list[str], value: Any, origin: str) -> None:
    node = raw
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: '{'.'.join(path[: i + 1])}' is not a section")
        node = child
    node[path[-1]] = value


def _describe(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid config"]
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}'")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def load_config(source: str | os.PathLike | dict, overrides: list[str] | tuple = ()
                ) -> ExperimentConfig:
    """Load and validate an experiment config from a YAML path or a dict."""
    if isinstance(source, dict):
        raw, origin = dict(source), "config dict"
    else:
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"{origin}: no such config file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{origin}: expected a mapping at the top level")
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy of plain data
    for text in overrides:
        path_parts, value = parse_override(text)
        _apply(raw, path_parts, value, origin)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from None


def config_to_dict(config: ExperimentConfig) -> dict:
    """Plain JSON/YAML-ready dict of a resolved config."""
    return config.model_dump(mode="json")
