"""Guards on the import structure (issue #25): config is a leaf imported only by the CLI layer,
the package graph is one-way, and imports inside functions are few and explained.

Parsed with ``ast`` (nothing is imported). Imports under ``if TYPE_CHECKING:`` (type hints) and
under ``if __name__ == "__main__":`` (a module run as a program is the CLI layer) are not runtime
edges of the package.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest

from common.lazy import lazy_module
from tests.helpers import ROOT, run

STAGES = ("data", "forecasters", "options", "envs", "agents", "execution", "dashboard")
SCRIPTS = ("train", "evaluate", "trade")
MAX_FUNCTION_IMPORTS = 30  # strictly fewer than this many imports inside function bodies
# What each layer may import (besides itself): data -> forecasters, options -> envs -> agents ->
# execution -> scripts; the dashboard reads files (the data package's readers) and the shared
# analytics in common; ``cli`` and the scripts are the CLI layer; ``config`` imports every
# stage's config section.
ALLOWED = {
    "common": set(),
    "data": {"common"},
    "forecasters": {"common", "data"},
    "options": {"common", "data"},
    "envs": {"common", "data", "forecasters", "options"},
    "agents": {"common", "data", "forecasters", "options", "envs"},
    "execution": {"common", "data", "forecasters", "options", "envs", "agents"},
    "dashboard": {"common", "data"},
    "config": {"common", "data", "forecasters", "options", "envs", "agents"},
    "cli": {"common", "data", "forecasters", "options", "envs", "agents", "execution", "config"},
    **{script: {"common", "data", "forecasters", "options", "envs", "agents", "execution",
                "config", "cli"} for script in SCRIPTS},
}
PROJECT = set(ALLOWED)


def _source_files() -> list[Path]:
    """The project's modules outside tests/ and bench/ (and hidden folders such as .venv)."""
    return [p for p in sorted(ROOT.rglob("*.py"))
            if p.relative_to(ROOT).parts[0] not in ("tests", "bench")
            and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]


def _layer(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _skipped(node: ast.If) -> bool:
    return ast.unparse(node.test) in ("TYPE_CHECKING", "__name__ == '__main__'")


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [] if node.level else [node.module or ""]
    return [alias.name for alias in node.names]


def runtime_imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """(import node, inside a function) for every import that runs when the module is used."""
    found = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _skipped(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, in_function))
            walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    walk(tree, False)
    return found


def _commented(lines: list[str], node: ast.stmt) -> bool:
    """A ``#`` comment on the import's own lines or on the line just above it."""
    own = lines[node.lineno - 1:node.end_lineno]
    above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
    return any("#" in line for line in own) or above.startswith("#")


def _parsed() -> list[tuple[Path, list[str], ast.AST]]:
    out = []
    for path in _source_files():
        text = path.read_text(encoding="utf-8")
        out.append((path, text.splitlines(), ast.parse(text)))
    return out


def test_few_imports_inside_functions_each_explained():
    inside, unexplained = [], []
    for path, lines, tree in _parsed():
        for node, in_function in runtime_imports(tree):
            if in_function:
                where = f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"
                inside.append(where)
                if not _commented(lines, node):
                    unexplained.append(where)
    assert len(inside) < MAX_FUNCTION_IMPORTS, "\n".join(inside)
    assert not unexplained, ("imports inside functions are for optional heavy dependencies, "
                             "with a comment saying why:\n" + "\n".join(unexplained))


def test_no_stage_imports_config_at_runtime():
    offenders = [f"{path.relative_to(ROOT)}:{node.lineno}"
                 for path, _, tree in _parsed() if _layer(path) in STAGES
                 for node, _ in runtime_imports(tree)
                 if any(name.split(".")[0] == "config" for name in _imported(node))]
    assert not offenders, offenders


def test_the_import_graph_is_one_way():
    wrong = []
    for path, _, tree in _parsed():
        layer = _layer(path)
        assert layer in ALLOWED, f"{path}: a new top-level module; place it in the layer order"
        for node, _ in runtime_imports(tree):
            for name in _imported(node):
                target = name.split(".")[0]
                if target in PROJECT and target != layer and target not in ALLOWED[layer]:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {layer} -> {target}")
    assert not wrong, "\n".join(wrong)


def test_the_guards_see_what_they_guard(tmp_path):
    """The walker finds an import in a nested function and skips TYPE_CHECKING/__main__ ones."""
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import config\n"
                     "def f():\n    def g():\n        import torch\n"
                     "if __name__ == '__main__':\n    import cli.tune\n")
    found = [(ast.unparse(n), inside) for n, inside in runtime_imports(tree)]
    assert found == [("from typing import TYPE_CHECKING", False), ("import torch", True)]


# What a process that opens an environment (or prints a CLI error) must not load: each costs
# 0.3-3 s of start-up and none is needed before the first price or the first training step.
HEAVY_AT_START = ("torch", "stable_baselines3", "scipy.stats", "scipy.optimize", "scipy.special",
                  "matplotlib", "sklearn", "xgboost")


def test_config_and_the_environment_open_without_the_heavy_libraries():
    code = ("import sys, types, config, envs, agents, forecasters, options\n"
            "print(' '.join(name for name in " + repr(HEAVY_AT_START) + "\n"
            "      if name in sys.modules and type(sys.modules[name]) is types.ModuleType))")
    done = run("-c", code, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [], f"loaded at import: {done.stdout}"


def test_a_lazy_module_loads_at_its_first_attribute(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    module = lazy_module("colorsys")
    assert sys.modules["colorsys"] is module and type(module) is not types.ModuleType
    assert module.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert type(module) is types.ModuleType  # loaded now: a plain module again
    assert lazy_module("colorsys") is module  # already loaded: returned as it is
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        lazy_module("no_such_module_here")


def test_the_project_asks_mkl_for_reproducible_results_before_torch_computes():
    """``common`` sets ``MKL_CBWR=AUTO,STRICT`` (alignment-independent MKL maths, see its
    docstring) unless the user set it; every stage imports ``common`` before torch computes."""
    import os

    code = ("import os, forecasters, agents.ppo\n"
            "print(os.environ.get('MKL_CBWR'))")
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = run("-c", code, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["AUTO,STRICT"]
    out = run("-c", code, env={**env, "MKL_CBWR": "COMPATIBLE"})
    assert out.stdout.split() == ["COMPATIBLE"]  # the user's setting wins


def test_an_optimizer_used_to_act_leaves_torch_compiler_unloaded():
    """``agents.ppo`` spares a process that loads a model (evaluate, trade) the import of
    ``torch._dynamo`` by the optimizer methods torch wraps in ``_disable_dynamo``; the methods
    still do their work."""
    code = ("import sys, torch\n"
            "from agents.ppo import _algos\n"
            "_algos()\n"
            "net = torch.nn.Linear(3, 2)\n"
            "opt = torch.optim.Adam(net.parameters(), lr=0.1)\n"
            "net(torch.ones(3)).sum().backward()\n"
            "opt.zero_grad()\n"
            "assert all(p.grad is None for p in net.parameters())\n"
            "state = opt.state_dict()\n"
            "opt.load_state_dict(state)\n"
            "opt.add_param_group({'params': [torch.nn.Parameter(torch.zeros(1))]})\n"
            "assert len(opt.param_groups) == 2 and opt.state_dict()['param_groups'][0]['lr'] == 0.1\n"
            "print('torch._dynamo' in sys.modules)")
    out = run("-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False"]


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("train.py", ["--config", "nope.yaml"], "no such config file"),
    ("train.py", ["--config", "configs/quick.yaml", "--set", "agent.nope=1"],
     "unknown key 'agent.nope'"),
    ("evaluate.py", ["--run", "no_such_run"], "no such run folder"),
])
def test_bad_input_fails_before_the_heavy_stack_is_imported(script, argv, message):
    """A mistyped config, key or run folder is refused before train.py and evaluate.py import
    the training and evaluation stacks (the evaluation steps, the training loop, torch, SB3)."""
    module = script.removesuffix(".py")
    code = ("import sys\n"
            f"sys.argv = [{script!r}, *{argv!r}]\n"
            f"import {module}\n"
            "try:\n"
            f"    {module}.main(sys.argv[1:])\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, str(exc).replace(chr(10), ' '))\n"
            "heavy = ('torch', 'stable_baselines3', 'agents.eval_run', 'agents.audit',\n"
            "         'agents.training')\n"
            "print('loaded:', [name for name in heavy if name in sys.modules])\n")
    out = run("-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert message in lines[-2]
    assert lines[-1] == "loaded: []"
