"""Never-lossy folder replacement: the old folder stays until the new one is complete.

A new run is written into ``.NAME.tmp-*`` beside ``NAME`` and then swapped in:

- on Linux with ``renameat2(RENAME_EXCHANGE)`` the two folders trade places in one atomic step;
- elsewhere ``NAME`` is first renamed to ``.NAME.old``, then the new folder to ``NAME``.
  A kill between the two leaves ``.NAME.old`` and no ``NAME``: :func:`recover` (called
  before every listing, load and save) renames it back; an error between them puts it back at once.

The swap and the removal of the old folder run with SIGINT, SIGTERM and SIGHUP held back
(:func:`signals_deferred`): such a signal is delivered when they are done, so it can never leave a
half-made swap, and :func:`placements` tells the caller afterwards whether the new folder is in place
(the CLI's "interrupted" message says which run ``--out`` holds). Only ``kill -9`` can stop a swap
midway, and every point it can stop at leaves a whole folder at ``NAME`` or a ``.NAME.old`` that
:func:`recover` restores.

Leftover temporary folders (a write that never finished) are removed by :func:`recover`
once they are older than :data:`STALE_TMP_S`, so a write in progress elsewhere is left alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

STALE_TMP_S = 300.0
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100

#: The steps of :func:`replace_dir`, in order (the two-step swap adds ``old-set-aside``); :data:`on_step`
#: is called with each, so tests can put an interrupt or a kill at every one of them.
STEPS = ("written", "old-set-aside", "swapped", "old-half-removed", "done")
#: ``on_step(step)`` after each step of :func:`replace_dir`; None in normal use.
on_step = None
_DEFERRED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
_placements: dict[str, int] = {}


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


def placements(path) -> int:
    """How many times this process has put a new folder at ``path`` (compare before and after a write)."""
    return _placements.get(os.path.abspath(path), 0)


@contextlib.contextmanager
def signals_deferred():
    """Hold back SIGINT, SIGTERM and SIGHUP until the block is done, then deliver the first one caught.

    Only the main thread can change signal handlers; elsewhere (a dashboard worker) the block runs as is,
    since Python delivers these signals to the main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = {}
    for s in _DEFERRED:
        h = signal.getsignal(s)
        if h is None:  # a handler installed outside Python: leave it alone
            continue
        try:
            signal.signal(s, lambda signum, frame: caught.append(signum))
        except (ValueError, OSError):
            continue
        saved[s] = h
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        if caught:
            signal.raise_signal(caught[0])


def _step(name: str) -> None:
    if on_step is not None:
        on_step(name)


def _placed(path: Path) -> None:
    key = os.path.abspath(path)
    _placements[key] = _placements.get(key, 0) + 1


def _discard(tree: Path) -> None:
    """Remove a replaced folder; a failure only leaves a hidden leftover that :func:`recover` removes later."""
    try:
        first = next((e for e in sorted(os.scandir(tree), key=lambda e: e.name)
                      if e.is_file(follow_symlinks=False)), None)
        if first is not None:
            os.unlink(first.path)
        _step("old-half-removed")
        shutil.rmtree(tree, ignore_errors=True)
    except Exception:  # noqa: BLE001 - the new folder is in place; the old one is only clutter now
        pass


def replace_dir(tmp: Path, path: Path) -> None:
    """Put the complete folder ``tmp`` at ``path``; an existing ``path`` is kept until then.

    On an error before the new folder is in place, ``path`` holds the old one (the caller removes ``tmp``).
    """
    tmp, path = Path(tmp), Path(path)
    _step("written")
    with signals_deferred():
        if not os.path.lexists(path):
            os.rename(tmp, path)
            _placed(path)
            _step("swapped")
        elif exchange(tmp, path):  # tmp now holds the old contents
            _placed(path)
            _step("swapped")
            _discard(tmp)
        else:
            _two_step(tmp, path)
    _step("done")


def _two_step(tmp: Path, path: Path) -> None:
    """The swap without an atomic exchange: ``path`` -> ``.NAME.old``, then ``tmp`` -> ``path``."""
    old = old_path(path)
    if os.path.lexists(old):  # a leftover beside a complete ``path`` (recover() ran before the write)
        shutil.rmtree(old)
    os.replace(path, old)
    _step("old-set-aside")
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.replace(old, path)  # the old folder back in place
        except OSError:
            pass  # recover() restores it on the next load
        raise
    _placed(path)
    _step("swapped")
    _discard(old)


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
