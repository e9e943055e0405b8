"""Small helpers every stage may use: atomic writes and hashes, shared constants, CLI errors.

Importing it also asks Intel MKL (torch's CPU maths) for bitwise-reproducible results:
``MKL_CBWR=AUTO,STRICT`` unless the variable is already set. Without it, on CPUs with AVX-512,
MKL's matrix products depend on the memory alignment of their inputs, so the same LSTM fit or
PPO update can differ in its last bits with what the process allocated before (seen: a live
forecast one ulp-scale step off the walk-forward on the same rows). MKL reads the variable at
its first call, so it is enough that this runs before torch computes anything.
"""

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

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
