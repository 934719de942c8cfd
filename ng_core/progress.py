"""Progress reporting and cancellation for long work (localize, edit, evaluate, scores).

The core reports through a :class:`Progress` object; the CLI prints it, the dashboard
polls it from another thread. Cancelling raises :class:`~ng_core.errors.Cancelled`
between steps, never in the middle of one, so the model is always left unchanged.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from ng_core.errors import Cancelled


@dataclass
class ProgressEvent:
    stage: str
    done: int
    total: int
    message: str = ""
    metrics: dict = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def eta(self) -> float | None:
        if self.done <= 0 or self.total <= 0:
            return None
        return self.elapsed / self.done * (self.total - self.done)


class Progress:
    """Thread-safe progress sink with an optional callback and a cancel flag."""

    def __init__(self, callback=None, cancel_event: threading.Event | None = None):
        self.callback = callback
        self.cancel_event = cancel_event or threading.Event()
        self.history: list[ProgressEvent] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._stage_t0: dict[str, float] = {}
        #: Called at every check (from the worker): may cancel, e.g. a job whose page stopped polling.
        self.watchdog = None
        self.cancel_reason = ""

    def update(self, stage: str, done: int, total: int, message: str = "", **metrics) -> None:
        now = time.monotonic()
        t0 = self._stage_t0.setdefault(stage, now)
        ev = ProgressEvent(stage, done, total, message, metrics, now - t0)
        with self._lock:
            self.history.append(ev)
            if len(self.history) > 20000:
                del self.history[:10000]
        if self.callback is not None:
            self.callback(ev)
        self.check()

    def check(self) -> None:
        if self.watchdog is not None:
            self.watchdog()
        if self.cancel_event.is_set():
            raise Cancelled(self.cancel_reason or "cancelled by the user; nothing was changed")

    def cancel(self, reason: str = "") -> None:
        """Stop at the next check; ``reason`` becomes the Cancelled message (default: by the user)."""
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
        self.cancel_event.set()

    def phase(self, index: int, count: int, label: str) -> "Progress":
        """A child for part ``index`` of ``count`` equal parts of the work (e.g. an edit and its control).

        Its events reach this Progress with ``label`` before the message and ``done``/``total``
        spread over the parts, so one bar covers them all; cancelling (and a watchdog) act through it.
        """
        def forward(ev: ProgressEvent) -> None:
            self.update(ev.stage, index * ev.total + ev.done, count * ev.total,
                        f"{label}: {ev.message}" if ev.message else label, **ev.metrics)

        child = Progress(callback=forward, cancel_event=self.cancel_event)
        child.watchdog = self.check  # a check in the part is a check here (same watchdog, same reason)
        return child

    @property
    def last(self) -> ProgressEvent | None:
        with self._lock:
            return self.history[-1] if self.history else None

    def events(self, stage: str | None = None) -> list[ProgressEvent]:
        with self._lock:
            return [e for e in self.history if stage is None or e.stage == stage]


def as_progress(p) -> Progress:
    """Accept None, a Progress, or a plain callable(event)."""
    if p is None:
        return Progress()
    if isinstance(p, Progress):
        return p
    return Progress(callback=p)


def stderr_printer(every: float = 0.5):
    """A callback that prints a one-line status to stderr at most every ``every`` seconds."""
    last = {"t": 0.0, "stage": None}

    def cb(ev: ProgressEvent) -> None:
        now = time.monotonic()
        if ev.done < ev.total and now - last["t"] < every and ev.stage == last["stage"]:
            return
        last["t"], last["stage"] = now, ev.stage
        m = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in ev.metrics.items())
        eta = f" eta {ev.eta:.0f}s" if ev.eta is not None and ev.done < ev.total else ""
        print(f"[{ev.stage}] {ev.done}/{ev.total} {ev.message} {m}{eta}".rstrip(), file=sys.stderr, flush=True)

    return cb
