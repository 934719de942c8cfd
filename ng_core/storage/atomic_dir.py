"""Never-lossy folder replacement: the old folder stays until the new one is complete.

A new run is written into ``.NAME.tmp-*`` beside ``NAME`` and then swapped in:

- on Linux with ``renameat2(RENAME_EXCHANGE)`` the two folders trade places in one atomic step;
- elsewhere ``NAME`` is first renamed to ``.NAME.old``, then the new folder to ``NAME``.
  A crash between the two leaves ``.NAME.old`` and no ``NAME``: :func:`recover` (called
  before every listing, load and save) renames it back.

Leftover temporary folders (a write that never finished) are removed by :func:`recover`
once they are older than :data:`STALE_TMP_S`, so a write in progress elsewhere is left alone.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import time
from pathlib import Path

STALE_TMP_S = 300.0
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc_exchange():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


_renameat2 = _libc_exchange()


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when the platform or file system cannot."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(err, os.strerror(err), str(b))


def tmp_dir(path: Path) -> Path:
    """A fresh temporary folder beside ``path`` for writing its new contents."""
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))


def old_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def replace_dir(tmp: Path, path: Path) -> None:
    """Put the complete folder ``tmp`` at ``path``; an existing ``path`` is kept until then."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    if exchange(tmp, path):  # tmp now holds the old contents
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = old_path(path)
    if os.path.lexists(old):
        shutil.rmtree(old)
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def recover(parent, name: str | None = None, now: float | None = None) -> list[str]:
    """Repair what an interrupted :func:`replace_dir` left in ``parent`` (only for ``name`` if given).

    Returns a line per action taken.
    """
    parent = Path(parent)
    done: list[str] = []
    if not parent.is_dir():
        return done
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return done
    for e in entries:
        if not e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
            continue
        if e.name.endswith(".old") and len(e.name) > 5:
            target = e.name[1:-4]
            if name is not None and target != name:
                continue
            dest = parent / target
            try:
                if os.path.lexists(dest):
                    shutil.rmtree(e.path)
                    done.append(f"removed {e.name}: {target} is complete")
                else:
                    os.rename(e.path, dest)
                    done.append(f"restored {target} from {e.name}")
            except OSError:
                pass
        elif ".tmp-" in e.name:
            target = e.name[1:].split(".tmp-")[0]
            if name is not None and target != name:
                continue
            try:
                if now - e.stat(follow_symlinks=False).st_mtime >= STALE_TMP_S:
                    shutil.rmtree(e.path)
                    done.append(f"removed the unfinished write {e.name}")
            except OSError:
                pass
    return done
