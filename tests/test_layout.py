"""The house plan holds: imports run one way (storage → models → data → method → evaluation → studio/cli),
no library module imports the CLI, no private names imported across modules (no import circles:
test_import_graph.py).

Read from the source (AST), so it checks every import, also the deferred ones inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ng_core"

#: layer of each package; a module may import its own layer or a lower one.
LAYERS = {"errors": 0, "progress": 0, "storage": 0, "models": 1, "data": 2, "method": 3, "evaluation": 4,
          "studio": 5, "cli": 6}
#: The default model's pieces the library loads (assembly, weights conversion, the reader LoRA and its card).
#: Every other module of ``models/mini`` belongs to its training and evaluation scripts: leaves that draw data
#: and judge leaks, and that nothing in the library imports.
MINI_LOADED = {"ng_core.models.mini", "ng_core.models.mini.assemble", "ng_core.models.mini.gguf_smollm2",
               "ng_core.models.mini.onnx_dinov2", "ng_core.models.mini.reader_lora", "ng_core.models.mini.reader_card"}


def _is_leaf(mod: str) -> bool:
    return mod.startswith("ng_core.models.mini.") and mod not in MINI_LOADED


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, imported names, line, top level?) for every ng_core import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("ng_core"):
            yield node.module, [a.name for a in node.names], node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; the library imports absolutely")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ng_core"):
                    yield a.name, [], node.lineno, id(node) in top


MODULES = {_module(p): p for p in sorted(PKG.rglob("*.py"))}


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) < 2:
        return None  # ng_core itself (re-exports)
    return LAYERS.get(parts[1])


def _resolve(mod: str, names: list[str]) -> list[str]:
    """The modules an import statement loads (``from ng_core.method import edit`` loads ng_core.method.edit)."""
    out = [mod]
    out += [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
    return out


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_run_down_the_layers(mod):
    if mod in ("ng_core", "ng_core.__main__"):
        return
    if _is_leaf(mod):  # a leaf may use the library below the dashboard and the CLI
        for target, names, line, _ in _imports(MODULES[mod]):
            assert (_layer(target) or 0) < LAYERS["studio"], f"{mod}:{line} imports {target}"
        return
    mine = _layer(mod)
    assert mine is not None, f"{mod}: not in a known layer; add its package to LAYERS"
    for target, names, line, _ in _imports(MODULES[mod]):
        for t in _resolve(target, names):
            assert not _is_leaf(t) or _is_leaf(mod), f"{mod}:{line} imports the training/evaluation script {t}"
            lt = _layer(t)
            if lt is None:
                continue
            assert lt <= mine, f"{mod}:{line} imports {t}, a higher layer ({t.split('.')[1]} above {mod.split('.')[1]})"


def test_no_library_module_imports_the_cli():
    bad = [f"{m}:{line}" for m, p in MODULES.items() if not m.startswith("ng_core.cli") and m != "ng_core.__main__"
           for t, _, line, _ in _imports(p) if t == "ng_core.cli" or t.startswith("ng_core.cli.")]
    assert not bad, "library modules import the CLI: " + ", ".join(bad)


def test_no_private_names_across_modules():
    bad = []
    for m, p in MODULES.items():
        for t, names, line, _ in _imports(p):
            bad += [f"{m}:{line} imports {t}.{n}" for n in names if n.startswith("_") and t != m]
    assert not bad, "\n".join(bad)


# No import circles, deferred imports counted: tests/test_import_graph.py.
