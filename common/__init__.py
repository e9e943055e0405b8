"""Small helpers every stage may use: atomic writes and hashes, shared constants, CLI errors."""

from common.cli import run_cli
from common.errors import UserInputError
from common.io import (
    atomic_target,
    sha256_file,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from common.units import CONTRACT_MULTIPLIER, TRADING_DAYS_PER_YEAR

__all__ = [
    "CONTRACT_MULTIPLIER",
    "TRADING_DAYS_PER_YEAR",
    "UserInputError",
    "atomic_target",
    "run_cli",
    "sha256_file",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]
