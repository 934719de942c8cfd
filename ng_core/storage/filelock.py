"""An inter-process lock on a file (flock on POSIX, msvcrt on Windows): one assembly of a model at a time."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from ng_core.errors import ModelLoadError

if os.name == "nt":  # pragma: no cover - not exercised on our machines
    import msvcrt
else:
    import fcntl


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout_s: float = 1800.0) -> Iterator[None]:
    """Inter-process lock on a file (flock on POSIX, msvcrt on Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        if os.name == "nt":  # pragma: no cover - not exercised on our machines
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise ModelLoadError(f"timed out waiting for the assembly lock {path}")
                    time.sleep(0.5)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ModelLoadError(f"timed out waiting for the assembly lock {path}")
                    time.sleep(0.5)
        yield
    finally:
        with contextlib.suppress(Exception):
            if os.name == "nt":  # pragma: no cover
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


__all__ = ["exclusive_lock"]
