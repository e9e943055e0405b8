"""Where caches and databases live when a config does not say: the user's cache folder.

``$SPYRL_CACHE_DIR`` overrides it (tests, shared machines); otherwise platformdirs'
user cache dir for ``spy-options-rl``. Nothing here depends on the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "user_cache_root"]

APP_NAME = "spy-options-rl"


def user_cache_root() -> Path:
    """``$SPYRL_CACHE_DIR`` or platformdirs' user cache dir of this toolkit."""
    env = os.environ.get("SPYRL_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir(APP_NAME))
