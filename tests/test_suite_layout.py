"""The test suite's own layout: what `make test`'s worker scheduling relies on."""

from __future__ import annotations

from tests.helpers import ROOT, TINY_RUN_MODULES


def modules_naming(fixture: str) -> set[str]:
    """The test modules whose source names ``fixture`` (a test argument or a fixture of the
    module depending on it)."""
    return {path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").glob("test_*.py")
            if fixture in path.read_text() and path.name != "test_suite_layout.py"}


def test_every_module_using_the_tiny_run_is_scheduled_with_the_others():
    """A module using the session's tiny run that is not in TINY_RUN_MODULES would make a
    second pytest-xdist worker train the run again; a listed module that no longer uses it
    would only weigh on that worker."""
    assert modules_naming("tiny_run") == set(TINY_RUN_MODULES)
