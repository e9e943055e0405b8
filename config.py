"""Experiment configuration: one YAML per experiment, loaded into typed, strict models.

Every section rejects unknown keys with a message naming the key. ``load_config`` accepts a
YAML path or a dict, and ``--set key.sub=value`` style overrides (values parsed as YAML).
YAML is read strictly: a key given twice in one mapping and an impossible date (2017-02-30) are
errors naming the line. Relative paths in a config file (``data.path``, ``data.cache_dir``,
``forecast.cache_dir``, ``env.table_cache_dir``, ``forecast.tuned_params_path``,
``forecast.tune.best_params_path``, a relative ``sqlite:///`` storage URL) are resolved from the config file's folder, never from the
current directory; the tuned member parameters of ``forecast.tuned_params_path`` are read and
merged when the config is loaded (the run's resolved ``config.yaml`` holds the merged values).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.config import MAX_SEED, AgentConfig, BaselinesConfig
from common.errors import UserInputError
from data.config import DataConfig
from envs.config import EnvConfig
from forecasters.config import ForecastConfig
from options.costs import CostConfig
from options.positions import MarginConfig
from options.surface import SurfaceConfig, load_surface_config

__all__ = ["MAX_SEED", "ConfigError", "ExperimentConfig", "Segments", "load_config",
           "parse_override", "strict_yaml_load"]

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


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
    """Volatility surface, trading costs and the naked-short margin rule.

    ``surface_file`` names a calibrated surface YAML (``python -m options.calibrate`` writes
    them, with their provenance); its parameters fill ``surface``, and keys given under
    ``surface:`` override them (a run's resolved ``config.yaml`` lists every surface key, so
    re-reading it never picks up a later edit of the file).
    ``exercise``: ``american`` for SPY's options, ``european`` (default) for SPX index options
    (:mod:`options.american` prices the American style and decides early assignment).
    """

    exercise: Literal["european", "american"] = "european"
    surface_file: str | None = None
    surface: SurfaceConfig = SurfaceConfig()
    costs: CostConfig = CostConfig()
    margin: MarginConfig = MarginConfig()

    @model_validator(mode="before")
    @classmethod
    def _surface_from_file(cls, data):
        if isinstance(data, dict) and data.get("surface_file"):
            from_file = load_surface_config(data["surface_file"]).model_dump()
            explicit = data.get("surface") or {}
            if isinstance(explicit, SurfaceConfig):
                explicit = explicit.model_dump(exclude_unset=True)
            data = {**data, "surface": {**from_file, **explicit}}
        return data


class PathsConfig(_Section):
    """Market paths the training episodes are drawn from (``agents.paths``); validation and
    test always run on the real history."""

    source: str = Field("real", pattern="^(real|bootstrap|garch|mix)$",
                        description="real history, block bootstrap, GJR-GARCH paths, or a mix")
    n_paths: int = Field(16, ge=1, description="generated paths (each episode draws one)")
    block_bars: int = Field(20, ge=1, description="mean block length of the bootstrap, bars")
    seed: Seed = 0


class TrainConfig(_Section):
    """How one seed is trained. ``vec_env`` picks how the ``n_envs`` training envs are stepped
    (``batched`` by default: ``envs.vec_env.BatchedSpyVecEnv``, bit-identical to ``dummy`` and
    faster; a run may be resumed under another value)."""

    total_timesteps: int = Field(20_000, ge=1)
    n_envs: int = Field(1, ge=1, description="vectorised environments per seed")
    vec_env: str = Field(
        "batched", pattern="^(batched|dummy|subproc)$",
        description="batched: every env stepped in one loop in this process "
                    "(envs.vec_env.BatchedSpyVecEnv); dummy: SB3's DummyVecEnv over Monitor-"
                    "wrapped envs (the same transitions and results bit for bit, slower); "
                    "subproc: one process per env")
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1,
                              description="seeds train.py starts when given no --seed/--seeds")
    checkpoint_every_steps: int = Field(10_000, ge=1)
    eval_every_steps: int = Field(5_000, ge=1)
    min_validation_points: int = Field(
        10, ge=1, description="validate at least this often per run: the interval is "
                              "min(eval_every_steps, total_timesteps / min_validation_points)")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many validations in a row without a new best "
                                "Sharpe (None: never)")
    paths: PathsConfig = PathsConfig()
    reward_scale: float = Field(1.0, gt=0, description="multiply the rewards PPO learns from")
    normalize_reward: bool = Field(False, description="VecNormalize the rewards PPO learns from")
    progress_bar: bool = True

    @model_validator(mode="after")
    def _unique_seeds(self) -> TrainConfig:
        repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"duplicate seed(s) {repeated}; each seed trains once")
        return self


class EvalConfig(_Section):
    segment: str = Field("test", pattern="^(train|valid|test)$")
    bootstrap_block_bars: int = Field(20, ge=1)
    bootstrap_samples: int = Field(2000, ge=100)


# Upper bounds checked before anything is written: beyond them a run overflows or exhausts
# memory after its folder was started (1e300 USD of equity overflows the contract counts; a
# rollout buffer of n_steps x n_envs bars is held in memory; each environment holds its tables).
MAX_STARTING_EQUITY_USD = 1e12
MAX_N_STEPS = 1_000_000
MAX_N_ENVS = 256
MAX_ROLLOUT_STEPS = 4_194_304  # n_steps x n_envs: 2**22 transitions in one rollout buffer
MAX_TOTAL_TIMESTEPS = 10**10
MAX_N_EPOCHS = 1_000
_UPPER_BOUNDS = {
    ("env", "starting_equity_usd"): MAX_STARTING_EQUITY_USD,
    ("agent", "n_steps"): MAX_N_STEPS,
    ("agent", "n_epochs"): MAX_N_EPOCHS,
    ("train", "n_envs"): MAX_N_ENVS,
    ("train", "total_timesteps"): MAX_TOTAL_TIMESTEPS,
    ("train", "checkpoint_every_steps"): MAX_TOTAL_TIMESTEPS,
    ("train", "eval_every_steps"): MAX_TOTAL_TIMESTEPS,
}


def _non_finite_keys(value: Any, path: str = "") -> list[str]:
    """Dotted keys of every NaN or infinite float in a plain (model_dump) config tree."""
    if isinstance(value, dict):
        return [k for key, item in value.items()
                for k in _non_finite_keys(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list | tuple):
        return [k for i, item in enumerate(value) for k in _non_finite_keys(item, f"{path}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path} (got {value})"]
    return []


class ExperimentConfig(_Section):
    name: str = "experiment"
    seed: Seed = 0
    data: DataConfig = DataConfig()
    segments: Segments
    forecast: ForecastConfig = ForecastConfig()
    options: OptionsConfig = OptionsConfig()
    env: EnvConfig = EnvConfig()
    agent: AgentConfig = AgentConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _sane(self) -> ExperimentConfig:
        """Finite numbers, values within ``_UPPER_BOUNDS``, and a PPO minibatch that divides
        the rollout (``agent.batch_size`` into ``agent.n_steps x train.n_envs``)."""
        bad = _non_finite_keys(self.model_dump())
        if bad:
            raise ValueError(f"expected finite numbers: {', '.join(bad)}")
        for (section, key), limit in _UPPER_BOUNDS.items():
            value = getattr(getattr(self, section), key)
            if value > limit:
                raise ValueError(f"{section}.{key}: {value} is above the limit {limit:g}")
        rollout = self.agent.n_steps * self.train.n_envs
        if rollout > MAX_ROLLOUT_STEPS:
            raise ValueError(f"agent.n_steps x train.n_envs = {self.agent.n_steps} x "
                             f"{self.train.n_envs} = {rollout} steps per rollout is above the "
                             f"limit {MAX_ROLLOUT_STEPS}")
        if self.agent.decision_every_bars > 1 and self.train.vec_env != "batched":
            raise ValueError(f"agent.decision_every_bars {self.agent.decision_every_bars} needs "
                             f"train.vec_env: batched (got {self.train.vec_env})")
        if rollout % self.agent.batch_size:
            raise ValueError(f"agent.batch_size {self.agent.batch_size} must divide the rollout "
                             f"agent.n_steps x train.n_envs = {self.agent.n_steps} x "
                             f"{self.train.n_envs} = {rollout}")
        return self


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping and reports impossible dates."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"line {key_node.start_mark.line + 1}: key '{key}' given twice in one mapping "
                f"(first on line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


def _construct_timestamp(loader: _StrictLoader, node: yaml.ScalarNode):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise ConfigError(f"line {node.start_mark.line + 1}: '{node.value}' is not a valid date "
                          f"({exc})") from None


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def strict_yaml_load(text: str, origin: str) -> Any:
    """Parse YAML with duplicate keys and impossible dates as errors naming ``origin``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: not valid YAML{line} ({problem})") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"agent.learning_rate=1e-4"`` -> (["agent", "learning_rate"], 0.0001)."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected key.sub=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set '{text}': empty key part in '{key.strip()}'")
    return parts, strict_yaml_load(raw, f"--set '{text}'")


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
        elif not item["loc"]:  # a check across sections: its message names the keys
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


# Keys holding a path that, when relative in a config file, resolve from that file's folder.
_PATH_KEYS = (("data", "path"), ("data", "cache_dir"), ("forecast", "cache_dir"),
              ("env", "table_cache_dir"),
              ("data", "gdp_path"), ("data", "sentiment_path"),
              ("options", "surface_file"),
              ("forecast", "tuned_params_path"), ("forecast", "tune", "best_params_path"))
_SQLITE_PREFIX = "sqlite:///"


def _resolve_paths(raw: dict, base: Path) -> None:
    """Make the relative paths of ``raw`` absolute from ``base`` (in place)."""
    for keys in (*_PATH_KEYS, ("forecast", "tune", "storage")):
        node = raw
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(keys[-1]), str):
            continue
        value = node[keys[-1]]
        if keys[-1] == "storage":
            if value.startswith(_SQLITE_PREFIX) and not Path(
                    value.removeprefix(_SQLITE_PREFIX)).is_absolute():
                node["storage"] = _SQLITE_PREFIX + str(base / value.removeprefix(_SQLITE_PREFIX))
        elif not Path(value).expanduser().is_absolute():
            node[keys[-1]] = str(base / value)


def _read_file(path: Path) -> dict:
    origin = str(path)
    if path.is_dir():
        raise ConfigError(f"{origin}: is a folder; expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"{origin}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{origin}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read ({exc.strerror})") from None
    raw = strict_yaml_load(text, origin)
    if raw is None:
        raise ConfigError(f"{origin}: the config file is empty; expected a mapping with at "
                          f"least 'segments' (train, valid, test)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    return raw


def load_config(source: str | os.PathLike | dict, overrides: list[str] | tuple = ()
                ) -> ExperimentConfig:
    """Load and validate an experiment config from a YAML path or a dict."""
    if isinstance(source, dict):
        raw, origin = dict(source), "config dict"
    else:
        path = Path(source)
        origin = str(path)
        raw = _read_file(path)
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy of plain data
    if not isinstance(source, dict):
        _resolve_paths(raw, Path(source).resolve().parent)
    for text in overrides:  # paths given with --set stay relative to the current directory
        path_parts, value = parse_override(text)
        _apply(raw, path_parts, value, f"--set '{text}'")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from None
    return _with_tuned_params(config, origin)


def _with_tuned_params(config: ExperimentConfig, origin: str) -> ExperimentConfig:
    """Merge the tuned member parameters that ``forecast.tuned_params_path`` names."""
    if config.forecast.tuned_params_path is None:
        return config
    try:
        forecast = config.forecast.resolved()
    except FileNotFoundError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{origin}: forecast.tuned_params_path: {exc}") from None
    return config.model_copy(update={"forecast": forecast})


def config_to_dict(config: ExperimentConfig) -> dict:
    """Plain JSON/YAML-ready dict of a resolved config."""
    return config.model_dump(mode="json")
