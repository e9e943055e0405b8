"""One way for every command-line entry point to report errors.

``run_cli(main, argv)`` runs ``main(argv)``. A user-input error (``UserInputError`` and its
subclasses), a pydantic/config error or an OS error on input becomes one line on stderr and exit
status 2; Ctrl-C becomes one line and status 130. ``--debug`` anywhere in argv shows the
traceback instead (and is removed before ``main`` sees argv).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from common.errors import UserInputError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "require_counts", "run_cli"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def require_counts(args, positive: Sequence[str] = (), non_negative: Sequence[str] = ()) -> None:
    """Refuse, naming the flag, an integer option of ``args`` (an argparse namespace; ``None``
    means "not given") below 1 (``positive``) or below 0 (``non_negative``)."""
    for flags, least, what in ((positive, 1, "a positive integer"),
                               (non_negative, 0, "0 or a positive integer")):
        for flag in flags:
            value = getattr(args, flag)
            if value is not None and value < least:
                raise UserInputError(f"--{flag.replace('_', '-')}: expected {what}, "
                                     f"got {value}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or exc.__class__.__name__
        return f"{exc.filename}: {reason}"
    text = str(exc).strip() or exc.__class__.__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def run_cli(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None,
            prog: str | None = None) -> int:
    """Run ``main`` with clean error reporting; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    name = prog or (sys.argv[0].rsplit("/", 1)[-1] if sys.argv else "spyrl")
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
        return int(main(args) or 0)
    try:
        return int(main(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserInputError, OSError) as exc:
        print(f"{name}: error: {_one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_USAGE
