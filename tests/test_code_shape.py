"""The shape of the library's code: no function longer than a screenful or two, and no import hidden inside a
function without a reason.

Read from the source (AST), for the library (``ng_core``) and the default model's training package (``ng_train``).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKGS = (ROOT / "ng_core", ROOT / "ng_train")

MAX_FUNCTION_LINES = 100
#: ``path:function`` allowed over :data:`MAX_FUNCTION_LINES` (none: split a long function at its seams instead).
LONG_FUNCTIONS_ALLOWED: set[str] = set()
#: Folders whose deferred imports are not checked for a reason (none).
DEFERRED_UNCHECKED: tuple[str, ...] = ()


def _files():
    for pkg in PKGS:
        for path in sorted(pkg.rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def _functions(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_over_100_lines():
    long = {}
    for rel, path in _files():
        for fn in _functions(ast.parse(path.read_text(), filename=rel)):
            n = fn.end_lineno - fn.lineno + 1
            if n > MAX_FUNCTION_LINES:
                long[f"{rel}:{fn.name}"] = n
    new = {k: v for k, v in long.items() if k not in LONG_FUNCTIONS_ALLOWED}
    assert not new, "functions over %d lines (split them at their seams): %s" % (
        MAX_FUNCTION_LINES, ", ".join(f"{k} ({v})" for k, v in sorted(new.items())))
    stale = LONG_FUNCTIONS_ALLOWED - set(long)
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines, drop from LONG_FUNCTIONS_ALLOWED: {sorted(stale)}"


def _unexplained(source: str, rel: str) -> list[str]:
    """Function-level imports without a ``# deferred: <why>`` comment on their lines or the line above; an import
    right after an explained one in the same function (a block of imports) shares its reason."""
    lines = source.splitlines()
    bad = []
    for fn in _functions(ast.parse(source, filename=rel)):
        explained = False
        nodes = [n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in sorted(nodes, key=lambda n: n.lineno):
            span = lines[node.lineno - 2:node.end_lineno] if node.lineno > 1 else lines[:node.end_lineno]
            explained = explained or any("# deferred:" in line for line in span)
            if not explained:
                bad.append(f"{rel}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return bad


def test_deferred_imports_say_why():
    """An import stays inside a function only where that pays (torch kept out of ``ng --help``, a heavy or optional
    library loaded only when used, an import cycle broken): the comment says which."""
    bad = []
    for rel, path in _files():
        if not rel.startswith(DEFERRED_UNCHECKED):
            bad += _unexplained(path.read_text(), rel)
    assert not bad, ("deferred imports without a '# deferred: <why>' comment (or move them to the top):\n"
                     + "\n".join(bad))


def test_the_reason_check_reads_blocks():
    src = ("def f():\n    import a  # deferred: slow\n    import b\n\n"
           "def g():\n    x = 1\n    import c\n\n"
           "def h():\n    # deferred: optional\n    import d\n")
    assert _unexplained(src, "m.py") == ["m.py:7: import c"]
