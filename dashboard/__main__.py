"""``python -m dashboard [--runs runs/] [--journal PATH] [--port 8501] [--headless]``: serve
the read-only dashboard on 127.0.0.1 (Streamlit)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common.cli import run_cli
from common.errors import UserInputError
from dashboard import settings

APP = Path(__file__).with_name("app.py")
REPO_ROOT = APP.parent.parent  # on the app's import path when the package is not installed
DEFAULT_PORT = 8501
MAX_PORT = 65535


def build_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line that serves the app."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", args.address, "--server.port", str(args.port),
            "--server.headless", "true" if args.headless else "false",
            "--server.runOnSave", "false", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__)
    parser.add_argument("--runs", default="runs", help="folder of run folders (default runs/)")
    parser.add_argument("--journal", help="an executor's SQLite journal for the Live page")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 8501")
    parser.add_argument("--address", default="127.0.0.1", help="default 127.0.0.1 (localhost)")
    parser.add_argument("--headless", action="store_true", help="do not open a browser")
    args = parser.parse_args(argv)
    if not 0 < args.port <= MAX_PORT:
        raise UserInputError(f"--port {args.port}: expected 1..{MAX_PORT}")
    if args.journal is not None and not Path(args.journal).is_file():
        raise UserInputError(f"--journal {args.journal}: no such file")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env[settings.ENV_RUNS] = str(Path(args.runs).resolve())
    if args.journal is not None:
        env[settings.ENV_JOURNAL] = str(Path(args.journal).resolve())
    else:
        env.pop(settings.ENV_JOURNAL, None)
    print(f"dashboard: runs {env[settings.ENV_RUNS]}, http://{args.address}:{args.port}", flush=True)
    try:
        return subprocess.call(build_command(args), env=env)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m dashboard"))
