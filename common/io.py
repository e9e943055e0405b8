"""Atomic file writes and content hashes, shared by every stage.

A write goes to a temporary file in the same folder and is renamed into place, so a reader never
sees a half-written file and a crash leaves the previous version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FILE_MODE",
    "atomic_target",
    "content_key",
    "sha256_file",
    "write_json_atomic",
    "write_npz_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]

FILE_MODE = 0o644  # mkstemp makes 0600 files; results are meant to be shared
_HASH_CHUNK_BYTES = 1 << 20


def atomic_target(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh temporary file next to ``path`` (same filesystem, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp_name, FILE_MODE)
    return Path(tmp_name)


def write_parquet_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` to ``path`` as Parquet; readers never see a half-written file."""
    path = Path(path)
    tmp = atomic_target(path)
    try:
        frame.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    path = Path(path)
    tmp = atomic_target(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(document: Any, path: str | os.PathLike) -> Path:
    """Write ``document`` as indented JSON atomically (numpy scalars become floats)."""
    return write_text_atomic(json.dumps(document, indent=2, default=float) + "\n", path)


def write_npz_atomic(arrays: dict[str, np.ndarray], path: str | os.PathLike,
                     compress: bool = False) -> Path:
    """Write ``arrays`` to ``path`` as an ``.npz`` (zip-deflated with ``compress``) atomically
    (no object arrays: it is read back with ``allow_pickle=False``)."""
    path = Path(path)
    tmp = atomic_target(path)
    try:
        with open(tmp, "wb") as handle:  # a file object: numpy adds no second ".npz"
            (np.savez_compressed if compress else np.savez)(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def content_key(*parts: Any, length: int = 20) -> str:
    """Hex SHA-256 (first ``length`` digits) of ``parts`` for cache keys.

    An array counts by its dtype, shape and bytes; ``bytes`` as they are; anything else by its
    JSON form (sorted keys, ``str`` for what JSON cannot hold). Parts are separated, so
    ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"ndarray {array.dtype.str} {array.shape}".encode())
            digest.update(array.tobytes())
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
