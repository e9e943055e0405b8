"""A run folder's lock and the SHA-256 of the model files written into it.

``RunLock(run_dir, command)`` is a context manager that owns ``run_dir/.lock`` (PID, host, command,
start time) while a command writes the folder; a second writer gets :class:`RunFolderLockedError`.
A lock left by a process that no longer runs on this host is stale: it is reported and taken over.

Model files (SB3 zips) are pickles, so loading one runs code from whoever wrote it.
``record_model_sha256`` writes the hash of each model file into ``provenance.json`` under
``model_sha256`` (path relative to the run folder -> hex digest); ``verify_model_sha256`` refuses a
file whose bytes changed since, unless the user passes ``--allow-modified``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from pathlib import Path

from common.errors import UserInputError
from common.io import sha256_file, write_json_atomic

__all__ = [
    "LOCK_NAME",
    "PROVENANCE_NAME",
    "ModelFileModifiedError",
    "RunFolderLockedError",
    "RunLock",
    "record_model_sha256",
    "verify_model_sha256",
]

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
PROVENANCE_NAME = "provenance.json"
MODEL_SHA256_KEY = "model_sha256"


class RunFolderLockedError(UserInputError):
    """Another live process is writing the run folder."""


class ModelFileModifiedError(UserInputError):
    """A model file's bytes differ from the SHA-256 recorded when it was written."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Exclusive writer lock on a run folder (``run_dir/.lock``), released on exit."""

    def __init__(self, run_dir: str | os.PathLike, command: list[str] | str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.command = command if isinstance(command, str) else " ".join(map(str, command))
        self.stale: dict | None = None  # the stale lock this one replaced, if any

    def _record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

    def _read_existing(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable or half-written: treated as stale below

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = self._read_existing()
                if held is None:
                    continue
                same_host = held.get("host") == socket.gethostname()
                pid = held.get("pid")
                if isinstance(pid, int) and (not same_host or _pid_alive(pid)):
                    raise RunFolderLockedError(
                        f"{self.run_dir}: in use by PID {pid} on {held.get('host')} since "
                        f"{held.get('started')} ({held.get('command')}); wait for it, or delete "
                        f"{self.path} if that process is gone") from None
                log.warning("%s: removing a stale lock (PID %s on %s, started %s, no longer "
                            "running)", self.run_dir, pid, held.get("host"), held.get("started"))
                self.stale = held
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(self._record(), handle)
            return self
        raise RunFolderLockedError(f"{self.run_dir}: could not take {self.path}")

    def release(self) -> None:
        held = self._read_existing()
        if held and held.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _relative(run_dir: Path, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not inside the run folder {run_dir}") from None


def _read_provenance(run_dir: Path) -> dict:
    path = run_dir / PROVENANCE_NAME
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc})") from None


def record_model_sha256(run_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """Hash ``path`` and store it in ``run_dir/provenance.json`` under ``model_sha256``."""
    run_dir, path = Path(run_dir), Path(path)
    digest = sha256_file(path)
    document = _read_provenance(run_dir)
    document.setdefault(MODEL_SHA256_KEY, {})[_relative(run_dir, path)] = digest
    write_json_atomic(document, run_dir / PROVENANCE_NAME)
    return digest


def forget_model_sha256(run_dir: str | os.PathLike, path: str | os.PathLike) -> None:
    """Drop the record of a model file that was deleted (old checkpoints)."""
    run_dir = Path(run_dir)
    document = _read_provenance(run_dir)
    if document.get(MODEL_SHA256_KEY, {}).pop(_relative(run_dir, Path(path)), None) is not None:
        write_json_atomic(document, run_dir / PROVENANCE_NAME)


def verify_model_sha256(run_dir: str | os.PathLike, path: str | os.PathLike,
                        allow_modified: bool = False) -> str:
    """Check ``path`` against the SHA-256 recorded in ``run_dir/provenance.json``.

    Raises :class:`ModelFileModifiedError` if the file changed or has no record, unless
    ``allow_modified`` (then it logs a warning). Returns the file's current digest.
    """
    run_dir, path = Path(run_dir), Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such model file")
    digest = sha256_file(path)
    key = _relative(run_dir, path)
    recorded = _read_provenance(run_dir).get(MODEL_SHA256_KEY, {}).get(key)
    if recorded == digest:
        return digest
    problem = (f"has no SHA-256 recorded in {run_dir / PROVENANCE_NAME}" if recorded is None
               else f"has SHA-256 {digest[:12]}... but {PROVENANCE_NAME} recorded "
                    f"{recorded[:12]}...")
    if allow_modified:
        log.warning("%s %s; loading it anyway (--allow-modified)", path, problem)
        return digest
    raise ModelFileModifiedError(
        f"{path} {problem}; model files are pickles that run code when loaded, so a changed "
        f"file is refused (pass --allow-modified if you trust it)")
