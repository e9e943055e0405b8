"""make setup's translation of pip's configuration into uv's flags (.ci/uv_flags.py)."""

from __future__ import annotations

import importlib.util

from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("uv_flags", ROOT / ".ci" / "uv_flags.py")
uv_flags = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(uv_flags)


def test_pip_config_list_is_parsed_and_translated(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14.1\n")
    listing = (
        ":env:.find-links='/opt/wheels'\n"
        ":env:.default-timeout='180'\n"
        f"global.constraint='{constraints}'\n"
        "global.extra-index-url='file:///a/simple file:///b/simple'\n"
        "global.find-links='/ignored/by/the/variable'\n"
    )
    config = uv_flags.parse_config_list(listing)
    assert config["global.extra-index-url"] == "file:///a/simple file:///b/simple"
    assert " ".join(uv_flags.uv_flags(config)) == (
        "--extra-index-url file:///a/simple --extra-index-url file:///b/simple"
        f" --find-links /opt/wheels --constraints {constraints}"
        " --index-strategy unsafe-best-match"
    )


def test_precedence_is_pips_variable_then_install_then_global():
    config = {"global.index-url": "https://g", "install.index-url": "https://i"}
    assert uv_flags.uv_flags(config)[:2] == ["--index-url", "https://i"]
    config[":env:.index-url"] = "https://e"
    assert uv_flags.uv_flags(config)[:2] == ["--index-url", "https://e"]


def test_no_configuration_no_flags(tmp_path):
    """A machine without pip configuration (CI) gets uv's defaults; a constraint file that does
    not exist is left out, and alone it adds no index strategy either."""
    assert uv_flags.uv_flags({}) == []
    assert uv_flags.uv_flags({":env:.default-timeout": "180"}) == []
    assert uv_flags.uv_flags({"global.constraint": str(tmp_path / "missing.txt")}) == []
