"""Modules imported on their first use, for start-up time.

SciPy's ``stats``, ``optimize`` and ``special`` take about 1 s together to import, and a
process that opens a cached environment (or prints a CLI error) uses none of them. A module
bound with :func:`lazy_module` at the top of a file is a placeholder that runs the real import
at its first attribute access (:class:`importlib.util.LazyLoader`), so imports stay at the top
of the file, where the import-structure guards read them.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

__all__ = ["lazy_module"]


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, loaded at its first attribute access (at once if already loaded).

    Its parent packages are imported now (``scipy`` itself is cheap: it loads its submodules
    lazily too). Raises ``ModuleNotFoundError`` now when the module does not exist.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
