"""The house plan holds: imports run one way (storage → models → data → method → evaluation → studio/cli),
no library module imports the CLI or the training package, no private names imported across modules (no import
circles, deferred imports counted: test_import_graph.py).

Read from the source (AST), so it checks every import, also the deferred ones inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ng_core"
TRAIN = ROOT / "ng_train"

#: layer of each package; a module may import its own layer or a lower one.
LAYERS = {"errors": 0, "progress": 0, "storage": 0, "models": 1, "data": 2, "method": 3, "evaluation": 4,
          "studio": 5, "cli": 6}
#: ``ng_train`` (training and evaluation of the project's own models) sits on top of the library: it may use
#: every layer below the dashboard and the CLI, and no ``ng_core`` module imports it.


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _ours(mod: str) -> bool:
    return mod.split(".")[0] in ("ng_core", "ng_train")


def _imports(path: Path):
    """(imported module, imported names, line, top level?) for every ng_core / ng_train import in ``path``,
    also one by name (``importlib.import_module("...")``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _ours(node.module):
            yield node.module, [a.name for a in node.names], node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; the project imports absolutely")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _ours(a.name):
                    yield a.name, [], node.lineno, id(node) in top
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and _ours(node.args[0].value)):
            yield node.args[0].value, [], node.lineno, False


MODULES = {_module(p): p for p in sorted(PKG.rglob("*.py"))}
TRAIN_MODULES = {_module(p): p for p in sorted(TRAIN.rglob("*.py"))}
EVERY_MODULE = {**MODULES, **TRAIN_MODULES}


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) < 2:
        return None  # ng_core itself (re-exports)
    return LAYERS.get(parts[1])


def _resolve(mod: str, names: list[str]) -> list[str]:
    """The modules an import statement loads (``from ng_core.method import edit`` loads ng_core.method.edit)."""
    out = [mod]
    out += [f"{mod}.{n}" for n in names if f"{mod}.{n}" in EVERY_MODULE]
    return out


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_run_down_the_layers(mod):
    if mod in ("ng_core", "ng_core.__main__"):
        return
    mine = _layer(mod)
    assert mine is not None, f"{mod}: not in a known layer; add its package to LAYERS"
    for target, names, line, _ in _imports(MODULES[mod]):
        for t in _resolve(target, names):
            assert not t.startswith("ng_train"), f"{mod}:{line} imports the training package ({t})"
            lt = _layer(t)
            if lt is None:
                continue
            assert lt <= mine, f"{mod}:{line} imports {t}, a higher layer ({t.split('.')[1]} above {mod.split('.')[1]})"


def test_no_library_module_imports_the_training_package():
    """Training and evaluation build on the library, never the other way: not even a deferred import."""
    assert "ng_core.models.mini.train_reader" not in MODULES and "ng_train.mini.train_reader" in TRAIN_MODULES
    bad = [f"{m}:{line} imports {t}" for m, p in MODULES.items()
           for t, _, line, _ in _imports(p) if t.split(".")[0] == "ng_train"]
    assert not bad, "library modules import ng_train: " + ", ".join(bad)


@pytest.mark.parametrize("mod", sorted(TRAIN_MODULES))
def test_training_uses_the_library_below_the_dashboard(mod):
    for target, names, line, _ in _imports(TRAIN_MODULES[mod]):
        for t in _resolve(target, names):
            if t.startswith("ng_core"):
                assert (_layer(t) or 0) < LAYERS["studio"], f"{mod}:{line} imports {t}"


def test_no_library_module_imports_the_cli():
    bad = [f"{m}:{line}" for m, p in MODULES.items() if not m.startswith("ng_core.cli") and m != "ng_core.__main__"
           for t, _, line, _ in _imports(p) if t == "ng_core.cli" or t.startswith("ng_core.cli.")]
    assert not bad, "library modules import the CLI: " + ", ".join(bad)


def test_no_private_names_across_modules():
    bad = []
    for m, p in EVERY_MODULE.items():
        for t, names, line, _ in _imports(p):
            bad += [f"{m}:{line} imports {t}.{n}" for n in names if n.startswith("_") and t != m]
    assert not bad, "\n".join(bad)


# No import circles, deferred imports counted: tests/test_import_graph.py.
