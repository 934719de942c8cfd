"""The git commit of the code that produced a result, so a recorded command can be rerun on the same code.

Trained weights (the reader) are shipped with the command that made them; the generator that drew their
training images changes over time, so the command alone does not pin the data. Outside a git checkout
(an installed wheel) there is no commit to record, and None is returned.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def code_revision(root: Path = _ROOT) -> str | None:
    """``<commit>`` of the checkout holding ``root``, ``<commit>-dirty`` with uncommitted changes to tracked files."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != Path(root).resolve():
            return None  # installed inside someone else's repository: that commit says nothing about this code
        head = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")
