"""What a stopped command says about its ``--out`` run: checked at that moment, never assumed.

A run is swapped in with SIGINT/SIGTERM held back (:mod:`ng_core.storage.atomic_dir`), so when one lands the
folder at ``--out`` is whole: the new run if this process put it there, else the one that was there before (or
none). SIGTERM (``kill``) is turned into the same clean stop as Ctrl-C, so it gets the same cleanup and message.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

from ng_core.storage import atomic_dir


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs and the same true message is printed."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises :class:`Terminated` inside the block (main thread only; elsewhere the block runs as is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def _out(args) -> str | None:
    out = getattr(args, "out", None)
    return str(out) if getattr(args, "writes_run", False) and out else None


def before(args) -> int:
    """How many times this process had put a run at ``--out`` before the command ran."""
    out = _out(args)
    return atomic_dir.placements(Path(out).expanduser()) if out else 0


def out_state(args, n_before: int) -> str | None:
    """Which run ``--out`` holds now, in words (None for commands that write no run)."""
    out = _out(args)
    if out is None:
        return None
    path = Path(out).expanduser()
    if atomic_dir.placements(path) > n_before:
        return f"the new run was saved: {out} holds the new run"
    if os.path.lexists(path / "run.json"):
        return f"nothing was saved: {out} still holds the run it held before, unchanged"
    return f"nothing was saved: {out} was not created"


def message(args, n_before: int, e: BaseException) -> str:
    what = "terminated" if isinstance(e, Terminated) else "interrupted"
    state = out_state(args, n_before)
    return f"{what}; {state}" if state else f"{what} before the command finished"


def exit_code(e: BaseException) -> int:
    return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
