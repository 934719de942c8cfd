"""No import cycles in ng_core, counting every import: the top-level ones and the deferred ones inside functions.

A deferred import only hides a cycle until the function runs; two modules that need each other are one module
in two files. So the graph is read from the source (AST) and holds an edge ``A -> B`` for every import in
``A`` that makes Python run ``B``:

* ``import a.b.c`` runs ``a.b.c`` and, before it, the packages ``a.b`` and ``a`` (their ``__init__``);
* ``from a.b import n`` reads the namespace of ``a.b`` (an edge to it), runs ``a.b.n`` too when ``n`` is a
  submodule, and runs the packages above ``a.b``;
* a package's own ``__init__`` re-exports are edges from the package to its modules, like any import.

Implicit package edges stop at the importer's own packages: by the time any module of ``ng_core.data`` runs,
``ng_core`` and ``ng_core.data`` have already started (importing ``ng_core.data.images`` starts
``ng_core.data/__init__`` first), so ``ng_core.data.images`` importing ``ng_core.data.constants`` does not
run ``ng_core.data/__init__`` again and is no edge to it. An *explicit* read of a package's namespace from
inside it (``from ng_core.data import CATEGORIES`` in ``ng_core.data.images``) is an edge: it reads a half-run
``__init__``. ``ng_core/__init__`` imports nothing, so every module may import any other of the library without
going through it. Imports by name at run time (``importlib.import_module``, as in ``ng_core.models``'s lazy
attributes) are not read.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ng_core"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PKG.rglob("*.py"))}


def _packages_above(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _edges(mod: str, path: Path) -> dict[str, int]:
    """The ng_core modules ``mod`` runs by importing them (anywhere in its source), each with a line."""
    own = set(_packages_above(mod)) | {mod}
    out: dict[str, int] = {}

    def add(target: str, line: int, explicit: bool) -> None:
        if target == mod or target not in MODULES:
            return
        if not explicit and target in own:
            return
        out.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ng_core":
                    add(alias.name, node.lineno, True)
                    for pkg in _packages_above(alias.name):
                        add(pkg, node.lineno, False)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ng_core":
            assert node.level == 0, f"{path}:{node.lineno}: relative import; the library imports absolutely"
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            # ``from pkg import sub`` gets ``sub`` even from a half-run package; any other name reads ``pkg``.
            reads_namespace = len(subs) < len(node.names) or node.module not in own
            add(node.module, node.lineno, reads_namespace)
            for pkg in _packages_above(node.module):
                add(pkg, node.lineno, False)
            for sub in subs:
                add(sub, node.lineno, True)
    return out


GRAPH = {m: _edges(m, p) for m, p in MODULES.items()}


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_path_within(graph, comp) for comp in components]


def _path_within(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first inside the component)."""
    start, members = comp[0], set(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def _describe(cycle: list[str]) -> str:
    steps = [f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(steps + [cycle[-1]])


def test_graph_sees_deferred_and_submodule_imports(tmp_path):
    # a function-level ``from package import submodule`` runs the package and the submodule
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ng_core.data import images\n")
    edges = _edges("ng_core.storage.probe", probe)
    assert "ng_core.data.images" in edges and "ng_core.data" in edges
    # inside its own package, a submodule import does not run the package again; reading a name from it does
    probe.write_text("from ng_core.data import images\nfrom ng_core.data.constants import SPLITS\n")
    assert set(_edges("ng_core.data.probe", probe)) == {"ng_core.data.images", "ng_core.data.constants"}
    probe.write_text("def f():\n    from ng_core.data import CATEGORIES\n")
    assert set(_edges("ng_core.data.probe", probe)) == {"ng_core.data"}


def test_cycle_report_names_the_path():
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7}, "d": {"a": 1}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, f"{len(cycles)} import cycle(s), deferred imports counted:\n" + "\n".join(
        _describe(c) for c in cycles)
