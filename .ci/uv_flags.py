"""Print the `uv pip install` flags that stand for this machine's pip configuration.

uv reads neither pip's configuration files nor its PIP_* variables, so `make setup` hands it these
flags: pip's index URL, extra index URLs, find-links locations and constraint files (those that
exist), and, when there is any of them, `--index-strategy unsafe-best-match` so that uv, like pip,
takes the best matching version across every index and folder (by default uv takes a package only
from the first index listing it, which may lack the pinned version). It prints nothing where pip
has no such configuration.

Usage: python .ci/uv_flags.py, with the Python whose pip configuration counts (make setup: the
venv's). Standard library only: it runs before anything is installed. pip splits these options'
values on whitespace, so the flags are printed space-separated for the shell to split.
"""

import ast
import os
import subprocess
import sys

# pip's option name -> uv's flag.
UV_FLAGS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraints",
}


def pip_config() -> dict[str, str]:
    """This Python's `pip config list`."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    return parse_config_list(listing)


def parse_config_list(listing: str) -> dict[str, str]:
    """`pip config list` as a dict: 'section.option' -> value (':env:.option' for PIP_* variables)."""
    config = {}
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        config[key] = ast.literal_eval(value)  # pip prints each value as a Python string literal
    return config


def option(config: dict[str, str], name: str) -> list[str]:
    """The values pip's `install` command uses: a PIP_* variable over [install] over [global]."""
    for section in (":env:", "install", "global"):
        if f"{section}.{name}" in config:
            return config[f"{section}.{name}"].split()
    return []


def uv_flags(config: dict[str, str]) -> list[str]:
    flags = []
    for name, flag in UV_FLAGS.items():
        for value in option(config, name):
            if name != "constraint" or os.path.isfile(value):
                flags += [flag, value]
    return flags + ["--index-strategy", "unsafe-best-match"] if flags else []


if __name__ == "__main__":
    print(" ".join(uv_flags(pip_config())))
