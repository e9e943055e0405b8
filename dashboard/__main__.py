"""``python -m dashboard [--runs runs/] [--journal PATH] [--port 8501] [--headless]``: serve
the read-only dashboard on 127.0.0.1 (Streamlit).

Streamlit always runs headless in a child process (so its first-run e-mail prompt never
appears, with or without a terminal); without ``--headless`` this command opens the browser
itself once the server answers. SIGTERM, SIGHUP and Ctrl-C are forwarded to the child, which is
waited for, so nothing keeps serving the port after this command ends (on Linux the child also
stops if this process is killed outright).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
import webbrowser
from pathlib import Path

from common.cli import run_cli
from common.errors import UserInputError
from dashboard import settings

APP = Path(__file__).with_name("app.py")
REPO_ROOT = APP.parent.parent  # on the app's import path when the package is not installed
DEFAULT_PORT = 8501
MAX_PORT = 65535
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
HEALTH_POLL_S = 0.5
HEALTH_TIMEOUT_S = 120.0
CHILD_STOP_TIMEOUT_S = 20.0
_PR_SET_PDEATHSIG = 1  # prctl option: a signal for the child when its parent dies


def build_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line that serves the app."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", args.address, "--server.port", str(args.port),
            "--server.headless", "true",  # never Streamlit's first-run prompt
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
    return serve(build_command(args), env, None if args.headless else
                 f"http://{_browser_host(args.address)}:{args.port}")


def _browser_host(address: str) -> str:
    return "127.0.0.1" if address in ("0.0.0.0", "::", "") else address


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; ignored elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def serve(command: list[str], env: dict, open_url: str | None) -> int:
    """Run Streamlit as a child; forward stop signals to it and wait for it to exit."""
    stopping: list[int] = []
    child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def forward(signum, _frame) -> None:
        stopping.append(signum)
        with contextlib.suppress(ProcessLookupError):
            # Streamlit stops cleanly on SIGTERM and SIGINT; a hang-up means stop too.
            child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        if open_url is not None and _wait_healthy(child, open_url):
            webbrowser.open(open_url)
        while True:
            try:
                code = child.wait(timeout=CHILD_STOP_TIMEOUT_S if stopping else None)
                break
            except subprocess.TimeoutExpired:
                child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopping else code


def _wait_healthy(child: subprocess.Popen, url: str) -> bool:
    """True once the server answers its health check (False if it exits or never answers)."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while child.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            if response.status == 200:
                return True
        time.sleep(HEALTH_POLL_S)
    return False


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m dashboard"))
