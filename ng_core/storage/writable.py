"""Can a new file or folder be made here? Tried, not guessed: ``os.access`` says yes to root on /proc or /sys,
and to a read-only mount, where the write then fails only after the work is done."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def nearest_existing(path: Path) -> Path:
    """The first of ``path``'s parents that exists (where the folders up to ``path`` would be created)."""
    parent = Path(path).absolute().parent
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    return parent


def cannot_create_in(folder: Path, prefix: str = ".ng-probe-") -> str | None:
    """None when a new entry can be made in ``folder`` (one is made and removed at once); else why not."""
    try:
        probe = tempfile.mkdtemp(prefix=prefix, dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    try:
        os.rmdir(probe)
    except OSError:
        pass
    return None
