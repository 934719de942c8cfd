"""When a model was last used for someone's request, so background work can wait for a quiet moment.

Why: the guided demo prepares its held-out cards in the background. On a small CPU that work slows the
presenter's steps when it runs beside them (it holds the model for a batch, memory bandwidth is shared). Background
work marks its thread (:func:`in_background`), waits before each unit of work until nobody else has used the model
for a while (:meth:`Activity.wait_quiet`), and gives the model up between decoding steps as soon as a request wants
it (:meth:`Activity.wanted`: the adapter then raises :class:`Yielded`, and the unit is done again later).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

_local = threading.local()


class Yielded(Exception):
    """Background work stopped in the middle of a unit because a request wants the model (do it again later)."""


def in_background() -> None:
    """Mark the calling thread as background work: its use of a model is not counted as activity."""
    _local.background = True


def is_background() -> bool:
    return bool(getattr(_local, "background", False))


class Activity:
    """Who is using a model now and when it was last used (background threads not counted). Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._last = float("-inf")

    @contextmanager
    def using(self):
        """Count the calling thread as using the model for the block (waiting for it included)."""
        if is_background():
            yield
            return
        with self._lock:
            self._users += 1
            self._last = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                self._last = time.monotonic()

    def wanted(self) -> bool:
        """True when background work running now should give the model up: the calling thread is background work
        and a request is using the model or waiting for it."""
        if not is_background():
            return False
        with self._lock:
            return self._users > 0

    def quiet_for(self) -> float:
        """Seconds since the model was last used for a request (0 while in use)."""
        with self._lock:
            return 0.0 if self._users else time.monotonic() - self._last

    def wait_quiet(self, seconds: float, poll: float = 0.2, check=None) -> float:
        """Block until the model has been unused for ``seconds``; ``check()`` is called while waiting (it may raise
        to cancel). Returns the seconds waited."""
        t0 = time.monotonic()
        while self.quiet_for() < seconds:
            if check is not None:
                check()
            time.sleep(poll)
        return time.monotonic() - t0


__all__ = ["Activity", "Yielded", "in_background", "is_background"]
