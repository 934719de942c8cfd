"""The runs folder as a jail: runs are named, never given as paths, and nothing in them leads outside.

Used by the dashboard session (:class:`ng_core.studio.session.StudioSession`): ``?run=NAME`` links,
the Runs page, downloads and deletes all go through :func:`run_path`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path

from ng_core.errors import BundleError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_ARCHIVE_BYTES = 2 * 1024 ** 3


def run_path(runs_dir, name) -> Path:
    """The folder of run ``name`` inside ``runs_dir``; anything that is not a plain name is refused.

    The message never says whether some other path exists on the server.
    """
    name = str(name) if isinstance(name, str) else ""
    if not _NAME.match(name) or name.endswith(".old") or ".tmp-" in name:
        raise BundleError(f"invalid run name {name[:80]!r}: use letters, digits, '-', '_' and '.' "
                          "(a name inside the runs folder, not a path)")
    root = Path(runs_dir).expanduser()
    path = root / name
    if os.path.lexists(path):
        if path.is_symlink():
            raise BundleError(f"run {name!r} is a symbolic link; runs are only read from inside the runs folder")
        resolved, root_r = path.resolve(), root.resolve()
        if resolved.parent != root_r:
            raise BundleError(f"run {name!r} is not inside the runs folder")
    return path


def archive(path: Path) -> bytes:
    """The run folder as a zip, in memory: regular files only, symlinks never followed."""
    path = Path(path)
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
            for fn in sorted(filenames):
                f = Path(dirpath) / fn
                try:
                    fd = os.open(f, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue  # a symlink (never followed) or unreadable
                with os.fdopen(fd, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if not stat.S_ISREG(st.st_mode):
                        continue  # FIFOs, devices: never read
                    total += st.st_size
                    if total > MAX_ARCHIVE_BYTES:
                        raise BundleError(f"{path.name} is larger than the download limit of "
                                          f"{MAX_ARCHIVE_BYTES:,} bytes")
                    z.writestr(f"{path.name}/{f.relative_to(path)}", fh.read())
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ ownership
#: Beside run.json: which dashboard session saved the run (a hash of that session's secret token, so the
#: file never lets anyone act as that session). Runs made by the CLI have none.
OWNER_FILE = "saved_by.json"


def _owner_hash(token: str) -> str:
    return hashlib.sha256(f"ng-run-owner:{token}".encode()).hexdigest()[:32]


def mark_owner(path: Path, token: str) -> None:
    """Record that the session holding ``token`` saved the run at ``path``."""
    (Path(path) / OWNER_FILE).write_text(json.dumps({"owner": _owner_hash(token)}) + "\n")


def owned_by(path: Path, token: str | None) -> bool:
    """Did the session holding ``token`` save the run at ``path``? (False for CLI runs and unreadable files.)"""
    if not token:
        return False
    f = Path(path) / OWNER_FILE
    try:
        if f.is_symlink() or not f.is_file() or f.stat().st_size > 4096:
            return False
        meta = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("owner") == _owner_hash(token)
