"""Long work off the page: a :class:`Job` runs on a worker thread the page polls, and the session's job slot.

A job reports through a :class:`~ng_core.progress.Progress`, is cancellable between steps, and
cancels itself when its page stops polling (``stale_after``, :meth:`Job.heartbeat`). A job changes
the session only when it succeeds, in one assignment at its end (``on_success``), so a failed or
cancelled job leaves the session as it was.
"""
from __future__ import annotations

import threading
import time
import traceback
from contextlib import nullcontext
from typing import Callable

from ng_core.errors import Cancelled, NGError
from ng_core.models import load_model
from ng_core.models.imagecache import private_scope
from ng_core.models.mini import assemble
from ng_core.progress import Progress, ProgressEvent


#: Seconds without a heartbeat after which a session's job cancels itself (its tab is gone).
DEFAULT_STALE_AFTER = 60.0

STALE_REASON = "cancelled: the page stopped polling for {:.0f} s (tab closed?); nothing was changed"


class Job:
    """Long work on a worker thread: ``.progress`` to poll, ``.cancel()``, then ``.result`` or ``.error``.

    ``status`` is ``running`` | ``done`` | ``failed`` | ``cancelled``. ``on_success(result)``
    runs on the worker after the work succeeded (it applies the result to a session).

    Watchdog: a browser gives no "tab closed" event, so the page that shows the job calls
    :meth:`heartbeat` while polling; with ``stale_after`` set, a job not heartbeated for that
    many seconds cancels itself at its next progress check, exactly like a user cancel
    (``stale`` is then True). ``stale_after=None`` (the default) turns the watchdog off.
    """

    def __init__(self, kind: str, fn: Callable[[Progress], object], *, description: str = "",
                 on_success: Callable[[object], None] | None = None, stale_after: float | None = None):
        self.kind = kind
        self.stale_after = stale_after
        self.last_heartbeat = time.monotonic()
        self.description = description
        self.progress = Progress()
        self.result = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.status = "pending"
        self.stale = False
        self.started = time.time()
        self.finished: float | None = None
        self._fn = fn
        self._on_success = on_success
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ng-job-{kind}", daemon=True)
        if stale_after is not None:
            self.progress.watchdog = self._watchdog

    def start(self) -> "Job":
        self.status = "running"
        self.started = time.time()
        self.last_heartbeat = time.monotonic()
        self._thread.start()
        return self

    def heartbeat(self) -> None:
        """The owner is still watching (called by the page's polling)."""
        self.last_heartbeat = time.monotonic()

    @property
    def silent_for(self) -> float:
        """Seconds since the last heartbeat."""
        return time.monotonic() - self.last_heartbeat

    def _watchdog(self) -> None:
        if self.stale_after is not None and not self.cancel_requested and self.silent_for > self.stale_after:
            self.stale = True
            self.progress.cancel(STALE_REASON.format(self.stale_after))

    def _run(self) -> None:
        try:
            res = self._fn(self.progress)
            if self._on_success is not None:
                self._on_success(res)
            self.result = res
            self.status = "done"
        except Cancelled as e:
            self.error, self.status = e, "cancelled"
        except BaseException as e:  # noqa: BLE001 - reported to the UI, never swallowed silently
            self.error, self.status = e, "failed"
            self.traceback = traceback.format_exc()
        finally:
            self.finished = time.time()
            self._done.set()

    def cancel(self) -> None:
        """Ask the work to stop at its next step (the session is left unchanged)."""
        self.progress.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self.progress.cancel_event.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout`` seconds); True if it ended."""
        return self._done.wait(timeout)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def last(self) -> ProgressEvent | None:
        return self.progress.last

    @property
    def fraction(self) -> float:
        ev = self.last
        if self.status == "done":
            return 1.0
        if ev is None or ev.total <= 0:
            return 0.0
        return max(0.0, min(1.0, ev.done / ev.total))

    @property
    def eta(self) -> float | None:
        ev = self.last
        return None if ev is None or self.done else ev.eta

    def metric_history(self, stage: str | None = None) -> list[dict]:
        """One dict per progress event that carried numbers: ``{"step", "stage", **metrics}``."""
        out = []
        for i, ev in enumerate(self.progress.events(stage)):
            nums = {k: v for k, v in ev.metrics.items() if isinstance(v, (int, float))}
            if nums:
                out.append({"step": len(out) + 1, "stage": ev.stage, "done": ev.done, "total": ev.total, **nums})
        return out

    def error_message(self) -> str:
        if self.error is None:
            return ""
        if isinstance(self.error, NGError):
            return str(self.error)
        return f"{type(self.error).__name__}: {self.error}"


def must_assemble(spec: str | None = None) -> bool:
    """True when loading ``spec`` first assembles the embedded default model (minutes), False when it is cached or
    another model: the loading screen promises "a few minutes" only when they will be spent."""
    if (spec or assemble.MODEL_ID) != assemble.MODEL_ID:
        return False
    try:
        return not assemble.is_assembled()
    except Exception:  # noqa: BLE001 - a broken cache is assembled again, which takes the minutes
        return True


def load_model_job(spec: str | None = None, **kw) -> Job:
    """Load (and on first use assemble) a model on a worker thread, reporting progress."""

    def work(prog: Progress):
        def cb(done, total=100.0, message=""):
            prog.update("load", int(done), int(total) or 100, str(message))

        prog.update("load", 0, 100, f"loading {spec or 'the default model'}")
        adapter = load_model(spec, progress=cb, **kw)
        prog.update("load", 90, 100, "computing the model fingerprint")
        adapter.fingerprint()
        _ = adapter.n_image_tokens
        if adapter.reads:  # the OCR engine is built here, not at a request's or a background job's first reading
            prog.update("load", 95, 100, "starting the reader")
            adapter.warm_reader()
        prog.update("load", 100, 100, "ready")
        return adapter

    return Job("load", work, description=f"load model {spec or 'default'}").start()


class JobsMixin:
    """The session's single job slot: one job at a time, run inside the session's private image cache."""

    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.done

    def _start(self, kind: str, fn, on_success=None, description: str = "") -> Job:
        with self.shared.lock:
            if self.busy:
                raise NGError(f"a {self.job.kind} job is still running; wait for it or cancel it first")
            cache = self.shared.private_cache

            activity = getattr(self.adapter, "activity", None)

            def scoped(prog):
                # uploads in this job stay in this session's cache; the whole job counts as using the model, so
                # background work (the demo's preparation) waits for its end, not for a gap between its steps
                with private_scope(cache), (activity.using() if activity is not None else nullcontext()):
                    return fn(prog)

            self.job = Job(kind, scoped, description=description, on_success=on_success,
                           stale_after=self.stale_after).start()
            return self.job

    def cancel_job(self) -> None:
        if self.job is not None:
            self.job.cancel()
