"""The small, typed API the dashboard uses: one :class:`StudioSession` per browser session.

The shared model (a :class:`~ng_core.models.LlavaAdapter`) is never mutated. A session
holds its own state:

- the current image (kept in the session's memory only) and prompt; features and locality
  answers of uploads stay in the session's :class:`~ng_core.models.imagecache.PrivateCache`, never in
  the shared adapter's caches (only dataset files on disk go there),
- active gates (:class:`~ng_core.method.interventions.Gate`) and the current edit
  (:class:`~ng_core.method.interventions.Delta`), applied as scoped hooks for each call,
- the latest localization / scores run and the run the edit came from.

Long work runs in a :class:`Job`: a worker thread owned here, reporting through a
:class:`~ng_core.progress.Progress` that the UI polls, cancellable between steps; a job whose
page stops polling (its tab was closed) cancels itself after ``stale_after`` seconds
(:meth:`Job.heartbeat`). A job changes the session only when it succeeds, in one assignment
at its end, so a failed or cancelled job leaves the session as it was.

This module only composes the core (``pipeline``, ``scores``, ``interventions``,
``bundle``, ``data``, ``judge``, ``evaluate``); it holds no algorithm of its own and never
imports a UI library.
"""
from __future__ import annotations

import hashlib
import io
import secrets
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal

import torch

from ng_core.storage import run_folders
from ng_core.method.bundle import Run, list_runs
from ng_core.errors import BundleError, Cancelled, DataError, NGError
from ng_core.models.imagecache import PrivateCache, is_shared, private_scope
from ng_core.method.interventions import Delta, Gate, intervention_hooks, subject_positions
from ng_core.progress import Progress, ProgressEvent
from ng_core.data.records import EvalCase, ImageRecord

#: Sentinel: "the session's current image".
CURRENT = object()

#: What an answer runs with: True (gates and edit), False (base), "gates", "edit", or an edit Run's ΔW alone.
Interventions = bool | Literal["gates", "edit"] | Run

#: Edit methods for which a random-gate control of the same size is meaningful.
CONTROL_METHODS = ("neural_gate",)
#: The three states compared next to an edit with its control.
PAIR_VARIANTS = {"unedited": "Unedited", "learned": "Learned gate (Neural Gate)",
                 "control": "Random gate of the same size (control)"}

#: One sentence per gate position, for the UI.
GATE_WHERE_HELP = {
    "subject": "Scale the neurons only at the subject's last token (where Neural Gate finds and edits them).",
    "all": "Scale the neurons at every position: the prompt, the image tokens and each generated token.",
}


# ---------------------------------------------------------------------------- answers
@dataclass
class Answer:
    """One generated answer with the refusal judge's verdict (``None`` when no judge is installed)."""

    text: str
    verdict: object | None = None
    interventions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    prompt: str = ""
    subject: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool | None:
        return None if self.verdict is None else bool(getattr(self.verdict, "refused", False))

    @property
    def garbled(self) -> str | None:
        """Why the text is degenerate (repetition, no letters, mostly non-words), or None (:mod:`ng_core.evaluation.garbled`)."""
        from ng_core.evaluation.garbled import garbled

        return garbled(self.text)


@dataclass
class EditPair:
    """An edit and its control, the same edit with a random gate of the same size
    (``pipeline.edit_with_control``): does the learned localisation matter?"""

    learned: Run
    control: Run

    def run(self, which: str) -> Run:
        if which not in ("learned", "control"):
            raise ValueError(f"which must be 'learned' or 'control', not {which!r}")
        return self.learned if which == "learned" else self.control

    def diagnostics(self, which: str) -> dict:
        """Per-category diagnostics summed up: gate size per category, mean gate leak and subject gradient share."""
        d = self.run(which).metrics.get("diagnostics", {})

        def mean(key):
            vals = [float(v[key]) for v in d.values() if v.get(key) is not None]
            return sum(vals) / len(vals) if vals else None

        return {"gate_size": {c: int(v.get("gate_size", 0)) for c, v in d.items()},
                "gate_leak": mean("gate_leak"), "subject_grad_share": mean("subject_grad_share"),
                "delta_norm": mean("delta_norm")}

    def losses(self, which: str) -> list[dict]:
        """Per-step loss records of every category in edit order, numbered from 1."""
        out = []
        for cat, recs in self.run(which).metrics.get("losses", {}).items():
            for r in recs:
                out.append({"step": len(out) + 1, "category": cat, **r})
        return out


def judge_text(text: str):
    """The refusal judge's verdict on ``text``, or ``None`` when ``ng_core.evaluation.judge`` is not available."""
    fn = _judge_fn()
    return fn(text) if fn is not None else None


def judge_available() -> bool:
    return _judge_fn() is not None


def _judge_fn():
    try:
        from ng_core.evaluation.judge import judge
    except ImportError:
        return None
    return judge


def guess_subject(prompt: str, candidates=None) -> str | None:
    """The longest known subject (e.g. 'passport', 'phone number') that occurs in ``prompt``."""
    if candidates is None:
        try:
            from ng_core.data import SUBJECTS

            candidates = list(SUBJECTS.values())
        except ImportError:
            candidates = []
    low = (prompt or "").lower()
    hits = [c for c in candidates if c and c.lower() in low]
    return max(hits, key=len) if hits else None


# ---------------------------------------------------------------------------- jobs
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


def load_model_job(spec: str | None = None, **kw) -> Job:
    """Load (and on first use assemble) a model on a worker thread, reporting progress."""
    from ng_core.models import load_model

    def work(prog: Progress):
        def cb(done, total=100.0, message=""):
            prog.update("load", int(done), int(total) or 100, str(message))

        prog.update("load", 0, 100, f"loading {spec or 'the default model'}")
        adapter = load_model(spec, progress=cb, **kw)
        prog.update("load", 90, 100, "computing the model fingerprint")
        adapter.fingerprint()
        _ = adapter.n_image_tokens
        prog.update("load", 100, 100, "ready")
        return adapter

    return Job("load", work, description=f"load model {spec or 'default'}").start()


# ---------------------------------------------------------------------------- data helpers
def sample_dataset(data_dir, per_category: int = 3, seed: int = 0, progress=None):
    """The project dataset at ``data_dir``, generated there first (small) when it is missing."""
    try:
        from ng_core.data import generate_dataset, load_dataset
    except ImportError as e:  # pragma: no cover - the data package ships with the core
        raise DataError(f"the dataset package is not available: {e}") from None
    p = Path(data_dir).expanduser()
    if not (p / "dataset.json").is_file():
        cb = (lambda d, t, m: progress(d, t, m)) if progress else None
        generate_dataset(p, seed=seed, per_category=per_category, progress=cb)
    return load_dataset(p)


class PrivateImage(bytes):
    """Encoded image bytes that print as a short hash, never as their content.

    The core keys some caches by ``str(image)``; an uploaded image travels through a job as
    one of these so the key is ``private-image:<sha1>`` and no pixels end up in a key.
    """

    def __str__(self) -> str:
        return f"private-image:{hashlib.sha1(self).hexdigest()[:16]}"

    __repr__ = __str__

    @classmethod
    def from_image(cls, image) -> "PrivateImage":
        from ng_core.models.image_processing import open_image

        if isinstance(image, PrivateImage):
            return image
        buf = io.BytesIO()
        open_image(image).save(buf, format="PNG")
        return cls(buf.getvalue())


def record_from_inputs(image, prompt: str, subject: str, target: str = "I cannot",
                       benign_prompt: str | None = None, category: str = "current") -> ImageRecord:
    """One :class:`ImageRecord` from the current image and prompt (for localizing on them)."""
    if not subject or subject.lower() not in (prompt or "").lower():
        raise NGError(f"the prompt {prompt!r} does not contain the subject {subject!r}; type the subject as it "
                      "appears in the prompt")
    i = prompt.lower().find(subject.lower())
    subj = prompt[i:i + len(subject)]
    rewrite = prompt[:i] + "{}" + prompt[i + len(subj):]
    benign = benign_prompt or f"What is the colour of the {subj} in this image?"
    if subj.lower() not in benign.lower():
        raise NGError(f"the benign prompt {benign!r} must contain the subject {subj!r}")
    if not isinstance(image, (str, Path)):
        image = PrivateImage.from_image(image)
    return ImageRecord(image=image, category=category, subject=subj, rewrite_prompt=rewrite, target=target,
                       paraphrases=(prompt,), neighbours=(benign,), case_id=f"{category}/0", split="train")


# ---------------------------------------------------------------------------- neuron views
SCORE_LABELS = {
    "mask": "privacy score, mean 1 − tanh(m) (0 = kept, 2 = flipped)",
    "gradxact": "gradient × activation, privacy − benign",
    "contrast": "activation contrast, paired Cohen's d (privacy − benign)",
}
FREQ_LABELS = {
    "mask": "share of images where the neuron is flagged",
    "gradxact": "share of privacy prompts with positive attribution",
}


@dataclass
class NeuronView:
    """Layers x neurons arrays of one run, with a selection: what the heatmap, table and gates show."""

    method: str  # mask | gradxact | contrast
    unit: str  # residual | ffn
    layers: list
    score: "np.ndarray"  # [L, N] float32
    freq: "np.ndarray | None"  # [L, N] float32 in 0..1, or None
    selected: "np.ndarray"  # [L, N] bool
    categories: list = field(default_factory=list)
    rule: str = ""

    @property
    def score_label(self) -> str:
        return SCORE_LABELS.get(self.method, "score")

    @property
    def freq_label(self) -> str:
        return FREQ_LABELS.get(self.method, "")

    def counts(self) -> dict[int, int]:
        return {l: int(self.selected[i].sum()) for i, l in enumerate(self.layers)}

    def selection(self) -> dict[int, list[int]]:
        """{layer: selected neuron ids}."""
        import numpy as np

        return {l: [int(n) for n in np.flatnonzero(self.selected[i])] for i, l in enumerate(self.layers)}

    def top_per_layer(self, k: int, only_selected: bool = False) -> dict[int, list[int]]:
        """{layer: the ``k`` highest-scoring neurons} (optionally among the selected ones)."""
        import numpy as np

        out = {}
        for i, l in enumerate(self.layers):
            sc = np.where(self.selected[i], self.score[i], -np.inf) if only_selected else self.score[i]
            order = np.argsort(-sc, kind="stable")[: max(0, int(k))]
            out[l] = [int(n) for n in order if np.isfinite(sc[n])]
        return out

    def rows(self, limit: int | None = None, only_selected: bool = False) -> list[dict]:
        """Table rows (layer, neuron, score, frequency, selected), highest score first."""
        import numpy as np

        L, N = self.score.shape
        flat = self.score.reshape(-1)
        idx = np.argsort(-flat, kind="stable")
        if only_selected:
            idx = idx[self.selected.reshape(-1)[idx]]
        if limit is not None:
            idx = idx[:limit]
        out = []
        for j in idx:
            i, n = divmod(int(j), N)
            r = {"layer": int(self.layers[i]), "neuron": n, "score": float(flat[j])}
            if self.freq is not None:
                r["frequency"] = float(self.freq[i, n])
            r["selected"] = bool(self.selected[i, n])
            out.append(r)
        return out


def run_units(run: Run) -> list[str]:
    """The neuron units a localize or scores run has arrays for."""
    if run.tensors.get("scores"):
        units = {k.split("/")[1] for k in run.tensors["scores"] if "_" not in k.split("/")[1]}
        return [u for u in ("residual", "ffn") if u in units]
    return ["residual"] if run.tensors.get("masks") else []


def run_method(run: Run) -> str:
    if run.tensors.get("scores"):
        return next(iter(run.tensors["scores"])).split("/")[0]
    return "mask"


def run_categories(run: Run) -> list[str]:
    if run.tensors.get("masks"):
        return sorted({k.split("/")[0] for k in run.tensors["masks"]})
    return list(run.config.get("categories", []))


def neuron_view(run: Run, unit: str = "residual", category: str | None = None, privacy_value: float = 0.0,
                topk: float | None = None, threshold: float = 0.3, top_per_layer: int | None = None) -> NeuronView:
    """A run's per-layer neuron scores with a fresh selection (``localize.reselect``, no rerun).

    Learned masks: selected = consensus frequency > ``threshold`` of the per-image flags
    tanh(m) < ``privacy_value`` (or the ``topk`` fraction of smallest m); ``category`` None
    pools the categories (score averaged over every image, selected in any category).
    Score arrays (``gradxact``, ``contrast``): the ``top_per_layer`` highest scores per layer,
    and, where a frequency exists, frequency > ``threshold``.
    """
    import numpy as np

    from ng_core.method.localize import reselect

    if run.tensors.get("masks") and unit == "residual":
        masks = run.masks()
        cats = sorted(masks) if category in (None, "", "all") else [category]
        missing = [c for c in cats if c not in masks]
        if missing:
            raise NGError(f"this run has no masks for {', '.join(missing)}")
        layers = sorted({l for c in cats for l in masks[c]})
        score, freq, sel = [], [], []
        for l in layers:
            cms = [reselect(masks[c][l], privacy_value, topk, threshold) for c in cats if l in masks[c]]
            raw = torch.cat([cm.raw for cm in cms])
            score.append((1 - torch.tanh(raw)).mean(0))
            freq.append(torch.stack([cm.freq for cm in cms]).max(0).values)
            sel.append(torch.stack([cm.selected for cm in cms]).any(0))
        rule = (f"tanh(m) < {privacy_value:g}" if topk is None else f"the {topk:.0%} smallest m") + \
            f" in more than {threshold:.0%} of a category's images"
        sc = torch.stack(score).detach().numpy().astype("float32")
        sl = torch.stack(sel).numpy()
        fq = torch.stack(freq).detach().numpy().astype("float32")
        view = NeuronView("mask", "residual", layers, sc, fq, sl, cats, rule)
    elif run.tensors.get("scores"):
        method = run_method(run)
        t = run.tensors["scores"]
        key = f"{method}/{unit}"
        if key not in t:
            raise NGError(f"this run has no {unit} scores (it has: {', '.join(sorted(t))})")
        layers = list(run.config.get("layers") or range(t[key].shape[0]))
        sc = t[key].detach().float().numpy().astype("float32")
        fq = t[f"{key}_freq"].detach().float().numpy().astype("float32") if f"{key}_freq" in t else None
        sl = np.ones_like(sc, dtype=bool)
        parts = []
        if fq is not None:
            sl &= fq > threshold
            parts.append(f"frequency > {threshold:.0%}")
        k = top_per_layer if top_per_layer is not None else max(1, sc.shape[1] // 20)
        top = np.zeros_like(sl)
        order = np.argsort(-sc, axis=1, kind="stable")[:, :k]
        np.put_along_axis(top, order, True, axis=1)
        sl &= top & (sc > 0)
        parts.insert(0, f"top {k} per layer with a positive score")
        view = NeuronView(method, unit, layers, sc, fq, sl, run_categories(run), ", ".join(parts))
    else:
        raise NGError(f"this {run.kind} run has no neuron masks or scores")
    return view


# ---------------------------------------------------------------------------- the session
class StudioSession:
    """One browser session's view of the shared model: inputs, gates, edit, runs and jobs."""

    def __init__(self, adapter, *, runs_dir="runs", max_new_tokens: int = 32,
                 stale_after: float | None = DEFAULT_STALE_AFTER, delete_any_run: bool = False):
        """``stale_after``: a job of this session not heartbeated for that long cancels itself (None: never).
        ``delete_any_run``: allow deleting runs this session did not save (a single-user machine); by default
        a shared runs folder only lets the session that saved a run delete it."""
        self.adapter = adapter
        self.delete_any_run = bool(delete_any_run)
        #: this session's secret: runs it saves are marked with its hash (run_folders.mark_owner)
        self._owner_token = secrets.token_hex(16)
        self.stale_after = stale_after
        self.runs_dir = Path(runs_dir).expanduser()
        self.max_new_tokens = int(max_new_tokens)
        self.gates: list[Gate] = []
        self.deltas: list[Delta] = []
        self.edit_run: Run | None = None
        self.edit_pair: EditPair | None = None  # the last edit run with its random-gate control
        self.tradeoff: dict | None = None  # the last trade-off curve computed or loaded (ng_core.evaluation.tradeoff)
        self.localization: Run | None = None
        self.prompt: str = ""
        self.subject: str | None = None
        self.image = None  # PIL image, session memory only
        self.image_name: str = ""
        self.features: torch.Tensor | None = None
        self.reading: str | None = None  # what the model reads off the current image (None: nothing / no OCR)
        self.ledger: list[dict] = []
        self.job: Job | None = None
        self._image_version = 0
        self._edit_version = 0
        self._memo: dict = {}
        self._drafts: dict = {}  # last greedy tokens per input: the draft for the next answer to it
        #: Features and locality answers of in-memory images (uploads): never in the shared adapter.
        self.private_cache = PrivateCache()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ model facts
    @property
    def preset(self) -> dict:
        from ng_core.method.presets import load_preset

        return load_preset(self.adapter.model_id, self.adapter.n_layers)

    def model_info(self) -> dict:
        a = self.adapter
        n = a.n_parameters()
        nbytes = sum(p.numel() * p.element_size() for p in a.model.parameters())
        return {"model": a.model_id, "source": a.source, "layers": a.n_layers, "hidden_size": a.hidden_size,
                "ffn_size": a.ffn_size, "parameters": n, "weights_bytes": nbytes, "dtype": str(a.dtype),
                "image_tokens": a.n_image_tokens, "fingerprint": a.fingerprint(), "process_rss_bytes": _rss()}

    # ------------------------------------------------------------------ inputs
    def set_image(self, image, name: str = "", private: bool = True) -> None:
        """Make ``image`` (bytes, a path or a PIL image) the current one.

        Private images (uploads) are encoded without the model's shared feature cache,
        so they live only in this session's memory. Raises InputImageError for bad files.
        """
        from ng_core.models.image_processing import open_image

        img = open_image(image)
        shared = not private and is_shared(image)  # only dataset files may enter the shared cache
        feats = self.adapter.encode_image(image) if shared else self.adapter.encode_image_uncached(img)
        reading = self.adapter.read_image(image) if shared else self.adapter.read_image_uncached(img)
        with self._lock:
            self.image, self.features, self.image_name, self.reading = img, feats, name, reading
            self._image_version += 1
            self._memo.clear()
            self._drafts.clear()

    def clear_image(self) -> None:
        with self._lock:
            self.image, self.features, self.image_name, self.reading = None, None, "", None
            self._image_version += 1
            self._memo.clear()
            self._drafts.clear()

    def set_prompt(self, prompt: str, subject: str | None = None) -> None:
        with self._lock:
            self.prompt = prompt or ""
            self.subject = subject if subject else guess_subject(self.prompt)

    # ------------------------------------------------------------------ answering
    def _features_for(self, image):
        if image is CURRENT:
            return self.features, ("current", self._image_version)
        if image is None:
            return None, ("none",)
        if isinstance(image, torch.Tensor):
            return image, ("tensor", id(image))
        if isinstance(image, (str, Path)):
            return self.adapter.encode_image(image), ("path", str(image))
        from ng_core.models.image_processing import open_image

        img = open_image(image)
        key = hashlib.sha1(img.tobytes()).hexdigest()
        return self.private_cache.feature(self.adapter, img), ("private", key)

    def _reading_for(self, image) -> str | None:
        """The reading block for ``image``, by the same caching rule as its features."""
        if image is CURRENT:
            return self.reading
        if image is None or isinstance(image, torch.Tensor):
            return None
        if isinstance(image, (str, Path)):
            return self.adapter.read_image(image)
        return self.private_cache.reading(self.adapter, image)

    def _image_key(self, image):
        if image is CURRENT:
            return ("current", self._image_version)
        if image is None:
            return ("none",)
        if isinstance(image, (str, Path)):
            return ("path", str(image))
        if isinstance(image, torch.Tensor):
            return ("tensor", id(image))
        from ng_core.models.image_processing import open_image

        return ("private", hashlib.sha1(open_image(image).tobytes()).hexdigest())

    def _interventions(self, which: Interventions):
        if isinstance(which, Run):
            if which.kind != "edit":
                raise NGError(f"a {which.kind} run has no edit to answer with")
            return [], which.deltas()
        if which is True:
            return list(self.gates), list(self.deltas)
        if which is False:
            return [], []
        if which == "gates":
            return list(self.gates), []
        if which == "edit":
            return [], list(self.deltas)
        raise ValueError(f"interventions must be True, False, 'gates' or 'edit', not {which!r}")

    def ask(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
            interventions: Interventions = True, max_new_tokens: int | None = None,
            on_token: Callable[[str], None] | None = None, memo: bool = True) -> Answer:
        """Answer ``prompt`` about ``image`` (default: the session's current ones), greedily.

        ``interventions``: True (gates and edit), False (the base model), ``"gates"`` or ``"edit"``.
        ``on_token(text_so_far)`` streams the answer. Greedy answers are memoised in this session
        per (input, gates, edit), so going back to an earlier state is instant (``memo=False`` to skip).
        """
        prompt = self.prompt if prompt is None else prompt
        if not prompt or not prompt.strip():
            raise NGError("type a prompt first")
        if subject is None:
            subject = self.subject if prompt == self.prompt and self.subject else guess_subject(prompt)
        gates, deltas = self._interventions(interventions)
        notes = []
        if subject and subject.lower() not in prompt.lower():
            notes.append(f"the subject {subject!r} is not in the prompt")
            subject = None
        if any(g.where == "subject" for g in gates) and not subject:
            notes.append("gates at the subject token do nothing: the prompt has no subject")
        n_tok = max_new_tokens or self.max_new_tokens
        key = None
        if memo:
            key = (self._image_key(image), prompt, subject, n_tok, _gates_sig(gates),
                   _deltas_sig(deltas) if isinstance(interventions, Run) else
                   (self._edit_version if deltas else None))
            with self._lock:
                hit = self._memo.get(key)
            if hit is not None:
                if on_token is not None:
                    on_token(hit.text)
                return hit
        feats, _ = self._features_for(image)
        ikey = (key[0] if key is not None else self._image_key(image), prompt, subject, n_tok)
        with self._lock:
            draft = self._drafts.get(ikey)
        ans, tokens = self._generate(feats, prompt, subject, gates, deltas, n_tok, on_token, notes, draft,
                                     reading=self._reading_for(image))
        with self._lock:  # the next answer for this input (e.g. after a gate toggle) starts from this one
            self._drafts[ikey] = tokens
            while len(self._drafts) > 32:
                self._drafts.pop(next(iter(self._drafts)))
        if key is not None:
            with self._lock:
                self._memo[key] = ans
                while len(self._memo) > 128:
                    self._memo.pop(next(iter(self._memo)))
        return ans

    def _generate(self, feats, prompt, subject, gates, deltas, max_new_tokens, on_token, notes,
                  draft=None, reading: str | None = None) -> tuple[Answer, list[int]]:
        a = self.adapter
        hooks = None
        if gates or deltas:
            def hooks(batch):
                return intervention_hooks(a, gates, deltas, subject_positions(batch))
        cb = (lambda texts: on_token(texts[0])) if on_token is not None else None
        t0 = time.perf_counter()
        try:
            gen = a.generate([(feats, prompt, subject, reading)], max_new_tokens=max_new_tokens, hooks_for=hooks,
                             on_token=cb, draft=draft)[0]
        except NGError:
            if subject is None:
                raise
            # A subject the tokenizer cannot isolate: answer without subject-position gates.
            notes.append(f"cannot locate the subject {subject!r} in the tokens; subject gates are off")
            gen = a.generate([(feats, prompt, None, reading)], max_new_tokens=max_new_tokens, hooks_for=hooks,
                             on_token=cb, draft=draft)[0]
            subject = None
        dt = time.perf_counter() - t0
        desc = [g.describe() for g in gates] + [d.describe() for d in deltas]
        return Answer(gen.text, judge_text(gen.text), desc, dt, prompt, subject, notes), list(gen.token_ids)

    def base_answer(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
                    on_token=None) -> Answer:
        """The base model's answer (no interventions), memoised per input in this session."""
        return self.ask(image, prompt, subject=subject, interventions=False, on_token=on_token)

    def compare(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
                on_token=None, on_token_base=None) -> tuple[Answer, Answer]:
        """(base answer, answer with every active intervention) for the same input."""
        base = self.base_answer(image, prompt, subject=subject, on_token=on_token_base)
        if not self.gates and not self.deltas:
            if on_token is not None:
                on_token(base.text)
            return base, base
        return base, self.ask(image, prompt, subject=subject, interventions=True, on_token=on_token)

    def answer_batch(self, items: list[tuple], *, interventions: Interventions = True,
                     max_new_tokens: int | None = None) -> list[Answer]:
        """Answers for ``items`` = [(image path|None, prompt, subject|None)], generated together."""
        gates, deltas = self._interventions(interventions)
        a = self.adapter
        feats = [self._features_for(im)[0] for im, _, _ in items]
        rows = [(f, p, s if s and s.lower() in p.lower() else None, self._reading_for(im))
                for f, (im, p, s) in zip(feats, items)]
        hooks = None
        if gates or deltas:
            def hooks(batch):
                return intervention_hooks(a, gates, deltas, subject_positions(batch))
        t0 = time.perf_counter()
        gens = a.generate(rows, max_new_tokens=max_new_tokens or self.max_new_tokens, hooks_for=hooks)
        dt = (time.perf_counter() - t0) / max(1, len(items))
        desc = [g.describe() for g in gates] + [d.describe() for d in deltas]
        return [Answer(g.text, judge_text(g.text), desc, dt, r[1], r[2]) for g, r in zip(gens, rows)]

    # ------------------------------------------------------------------ gates
    def set_gates(self, gates: list[Gate]) -> None:
        for g in gates:
            self.adapter._check_layer(g.layer)
            size = self.adapter.hidden_size if g.unit == "residual" else self.adapter.ffn_size
            if len(g.neurons) and (int(g.neurons.max()) >= size or int(g.neurons.min()) < 0):
                raise NGError(f"neuron index out of range for layer {g.layer}: {g.unit} neurons are 0..{size - 1}")
        with self._lock:
            self.gates = list(gates)
            self._log("gates", f"{len(gates)} gate(s) active")

    def clear_gates(self) -> None:
        self.set_gates([])

    @staticmethod
    def make_gates(selection: dict[int, list[int]], scale: float = 0.0, where: str = "subject",
                   unit: str = "residual", label: str = "gate") -> list[Gate]:
        """One :class:`Gate` per layer of ``selection`` ({layer: [neuron, ...]}); empty layers are skipped."""
        return [Gate(int(l), torch.tensor(sorted({int(n) for n in ns}), dtype=torch.long), float(scale), where,
                     unit, f"{label} L{l}") for l, ns in sorted(selection.items()) if len(ns)]

    # ------------------------------------------------------------------ edit state
    @property
    def has_edit(self) -> bool:
        return bool(self.deltas)

    @property
    def edit_version(self) -> int:
        return self._edit_version

    def apply_edit(self, deltas: list[Delta], run: Run | None = None, label: str = "edit") -> None:
        for d in deltas:
            W = self.adapter.down_proj(d.layer).weight
            if tuple(d.delta.shape) != tuple(W.shape):
                raise BundleError(f"ΔW for layer {d.layer} has shape {tuple(d.delta.shape)}, "
                                  f"down_proj has {tuple(W.shape)}")
        with self._lock:
            self.deltas = list(deltas)
            self.edit_run = run
            if self.edit_pair is not None and not any(run is r for r in (self.edit_pair.learned,
                                                                           self.edit_pair.control)):
                self.edit_pair = None  # another edit replaces the pair
            self._edit_version += 1
            self._log("edit", f"{label}: " + "; ".join(d.describe() for d in deltas))

    def revert(self) -> None:
        """Drop the current edit: the session answers with the base weights again (exactly)."""
        with self._lock:
            had = bool(self.deltas)
            self.deltas, self.edit_run = [], None
            self._edit_version += 1
            if had:
                self._log("revert", "edit removed; base weights")

    def weight_change(self) -> dict[int, torch.Tensor]:
        """{layer: ‖ΔW row‖ per residual dim} for the current edit (rows of ``down_proj``)."""
        out = {}
        for d in self.deltas:
            out[d.layer] = out.get(d.layer, 0) + d.delta.float().norm(dim=1)
        return out

    def edit_fingerprint(self) -> str:
        """A short hash of the current edit ('base' when there is none): the model-state ledger's key."""
        if not self.deltas:
            return "base"
        h = hashlib.sha256()
        for d in sorted(self.deltas, key=lambda x: x.layer):
            h.update(str(d.layer).encode())
            h.update(d.delta.detach().float().contiguous().numpy().tobytes())
        return h.hexdigest()[:12]

    def active_interventions(self) -> list[str]:
        """One line per active gate and edit (what every answer with interventions runs with)."""
        return [g.describe() for g in self.gates] + [d.describe() for d in self.deltas]

    def _log(self, event: str, detail: str) -> None:
        self.ledger.append({"time": time.strftime("%H:%M:%S"), "event": event, "detail": detail,
                            "state": self.edit_fingerprint()})
        del self.ledger[:-200]

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[dict]:
        return list_runs(self.runs_dir)

    def run_path(self, name: str) -> Path:
        """The folder of run ``name`` inside the runs folder (names only: no paths, no symlinks out)."""
        return run_folders.run_path(self.runs_dir, name)

    def load_run(self, name_or_path, apply: bool = True) -> Run:
        """Load a run bundle (refused if made for another model); an edit run's ΔW becomes the session's edit.

        A string is a run name inside the runs folder (a ``?run=`` link, the Runs page); only a
        :class:`~pathlib.Path` given by code may point elsewhere.
        """
        path = name_or_path if isinstance(name_or_path, Path) else self.run_path(name_or_path)
        run = Run.load(path, self.adapter)
        if apply:
            if run.kind == "edit":
                label = f"run {path.name}"
                self.apply_edit([replace(d, label=f"{label} L{d.layer}") for d in run.deltas()], run, label)
            if run.tensors.get("masks") or run.tensors.get("scores"):
                with self._lock:
                    self.localization = run
        return run

    def save_run(self, run: Run, name: str) -> Path:
        path = self.run_path(name)
        if path.exists():
            raise BundleError(f"a run named {name!r} already exists; choose another name or delete it first")
        run.save(path)
        run_folders.mark_owner(path, self._owner_token)
        self._log("save", f"{run.kind} run saved as {name}")
        return path

    def save_edit(self, name: str) -> Path:
        if self.edit_run is None:
            raise NGError("there is no edit to save: run an edit first")
        return self.save_run(self.edit_run, name)

    def can_delete_run(self, name: str) -> tuple[bool, str]:
        """Whether this session may delete run ``name``, and why not (a shared runs folder: only the session
        that saved a run deletes it, unless ``delete_any_run``)."""
        path = self.run_path(name)
        if self.delete_any_run or run_folders.owned_by(path, self._owner_token):
            return True, ""
        return False, (f"run {name!r} was not saved by this browser session, so it cannot be deleted here; "
                       "delete its folder on disk, or start the dashboard with NG_DELETE_ANY_RUN=1 on a "
                       "single-user machine")

    def delete_run(self, name: str) -> None:
        path = self.run_path(name)
        if not (path / "run.json").is_file():
            raise BundleError(f"{path} is not a run bundle; nothing was deleted")
        ok, why = self.can_delete_run(name)
        if not ok:
            raise BundleError(why + "; nothing was deleted")
        shutil.rmtree(path)
        with self._lock:
            if self.edit_run is not None and self.edit_run.path == path:
                self.edit_run.path = None
            if self.localization is not None and self.localization.path == path:
                self.localization.path = None

    def run_archive(self, name: str) -> bytes:
        """The run folder as a zip file, in memory (for a download button); symlinks are never followed."""
        path = self.run_path(name)
        if not (path / "run.json").is_file():
            raise BundleError(f"{name} is not a run bundle")
        return run_folders.archive(path)

    # ------------------------------------------------------------------ jobs
    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.done

    def _start(self, kind: str, fn, on_success=None, description: str = "") -> Job:
        with self._lock:
            if self.busy:
                raise NGError(f"a {self.job.kind} job is still running; wait for it or cancel it first")
            cache = self.private_cache

            def scoped(prog):
                with private_scope(cache):  # uploads in this job stay in this session's cache
                    return fn(prog)

            self.job = Job(kind, scoped, description=description, on_success=on_success,
                           stale_after=self.stale_after).start()
            return self.job

    def start_localize(self, records_by_category: dict[str, list[ImageRecord]], layers: list[int],
                       mask_cfg=None, seed: int = 0, with_edit: bool = True) -> Job:
        """Stages A+B per category (``pipeline.localize_run``); the run becomes the session's localization."""
        from ng_core.method.pipeline import localize_run

        _check_records(records_by_category)
        deltas = list(self.deltas) if with_edit else []

        def work(prog):
            return localize_run(self.adapter, records_by_category, list(layers), mask_cfg, prog, seed, deltas)

        return self._start("localize", work, self._set_localization,
                           f"localize {', '.join(sorted(records_by_category))} at layers {list(layers)}")

    def start_scores(self, records: list[ImageRecord], score_cfg=None, mask_cfg=None, seed: int = 0) -> Job:
        """Per-layer neuron scores (``scores.compute_scores``); the run becomes the session's localization."""
        from ng_core.method.scores import ScoreConfig, compute_scores

        score_cfg = score_cfg or ScoreConfig()
        if not records:
            raise NGError("no images to score: choose at least one category")

        def work(prog):
            return compute_scores(self.adapter, list(records), score_cfg, mask_cfg, prog, seed)

        return self._start("scores", work, self._set_localization, f"{score_cfg.method} scores")

    def _set_localization(self, run: Run) -> None:
        with self._lock:
            self.localization = run
            self._log(run.kind, f"{run.kind} run ready ({', '.join(run.config.get('categories', []))})")

    def start_edit(self, records_by_category: dict[str, list[ImageRecord]], layer: int, mask_cfg=None,
                   edit_cfg=None, seed: int = 0, masks: dict | None = None) -> Job:
        """A Neural Gate edit or a baseline (``pipeline.edit_run``); on success its ΔW becomes the session's edit."""
        from ng_core.method.edit import EditConfig
        from ng_core.method.pipeline import edit_run

        _check_records(records_by_category)
        self.adapter._check_layer(layer)
        edit_cfg = edit_cfg or EditConfig()

        def work(prog):
            return edit_run(self.adapter, records_by_category, int(layer), mask_cfg, edit_cfg, prog, seed, masks)

        def apply(run: Run):
            label = f"edit ({edit_cfg.method})" if edit_cfg.method == "ft" else \
                f"edit ({edit_cfg.method}, {edit_cfg.gate_scope})"
            self.apply_edit([replace(d, label=f"{label} L{d.layer}") for d in run.deltas()], run, label)

        return self._start("edit", work, apply, f"{edit_cfg.method} edit at layer {layer}")

    def start_edit_with_control(self, records_by_category: dict[str, list[ImageRecord]], layer: int,
                                mask_cfg=None, edit_cfg=None, seed: int = 0, masks: dict | None = None) -> Job:
        """The edit and its random-gate control in one job (``pipeline.edit_with_control``).

        The result is an :class:`EditPair`; on success the learned edit becomes the session's edit
        and the pair ``self.edit_pair`` (switch with :meth:`use_pair`).
        """
        from ng_core.method.edit import EditConfig
        from ng_core.method.pipeline import edit_with_control

        _check_records(records_by_category)
        self.adapter._check_layer(layer)
        edit_cfg = edit_cfg or EditConfig()
        if edit_cfg.method not in CONTROL_METHODS:
            raise NGError(f"a random-gate control of a {edit_cfg.method} edit means nothing; "
                          f"it is for {', '.join(CONTROL_METHODS)}")

        def work(prog):
            return EditPair(*edit_with_control(self.adapter, records_by_category, int(layer), mask_cfg, edit_cfg,
                                               prog, seed, masks))

        def apply(pair: EditPair):
            with self._lock:
                self.edit_pair = pair
                self._apply_pair(pair, "learned")

        return self._start("edit", work, apply, f"{edit_cfg.method} edit + random-gate control at layer {layer}")

    def _apply_pair(self, pair: EditPair, which: str) -> None:
        run = pair.run(which)
        cfg = run.config.get("edit", {})
        label = f"{'random-gate control' if which == 'control' else 'edit'} ({cfg.get('method')}, " \
                f"{cfg.get('gate_scope')})"
        self.apply_edit([replace(d, label=f"{label} L{d.layer}") for d in run.deltas()], run, label)

    def use_pair(self, which: str) -> None:
        """Make the learned edit or its control (``"learned"`` | ``"control"``) the session's edit."""
        if self.edit_pair is None:
            raise NGError("there is no edit with a control: run one first")
        self._apply_pair(self.edit_pair, which)

    @property
    def pair_applied(self) -> str | None:
        """Which member of ``edit_pair`` is the session's edit now ('learned', 'control' or None)."""
        p = self.edit_pair
        if p is None or self.edit_run is None:
            return None
        return "learned" if self.edit_run is p.learned else "control" if self.edit_run is p.control else None

    def pair_answers(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None) -> dict:
        """{variant: Answer} for the unedited model, the learned edit and its control (gates off)."""
        p = self._need_pair()
        return {"unedited": self.ask(image, prompt, subject=subject, interventions=False),
                "learned": self.ask(image, prompt, subject=subject, interventions=p.learned),
                "control": self.ask(image, prompt, subject=subject, interventions=p.control)}

    def pair_batch(self, cases: list[EvalCase], max_new_tokens: int | None = None) -> dict:
        """Each case answered unedited, with the learned edit and with its control, judged, with rates.

        Returns ``{"cases", "answers": {variant: [Answer]}, "rates": {variant: behaviour_rates}}``.
        """
        p = self._need_pair()
        cases = list(cases)
        items = [(str(c.image) if c.image is not None else None, c.prompt, c.subject or None) for c in cases]
        answers = {v: self.answer_batch(items, interventions=w, max_new_tokens=max_new_tokens)
                   for v, w in (("unedited", False), ("learned", p.learned), ("control", p.control))}
        return {"cases": cases, "answers": answers,
                "rates": {v: behaviour_rates(cases, a) for v, a in answers.items()}}

    def _need_pair(self) -> EditPair:
        if self.edit_pair is None:
            raise NGError("there is no edit with a control: run an edit with 'Also run a random-gate control'")
        return self.edit_pair

    def start_tradeoff(self, records_by_category: dict[str, list[ImageRecord]], layer: int, cases: list[EvalCase],
                       *, param: str = "lr", values=None, mask_cfg=None, edit_cfg=None, control: bool = True,
                       seed: int = 0, masks: dict | None = None, max_new_tokens: int | None = None) -> Job:
        """The refusal / benign-answer trade-off over ``param`` (``tradeoff.tradeoff_curve``) as a job.

        Every edit is a hook inside the job: the session's own edit does not change; on success the
        result becomes ``self.tradeoff``.
        """
        from ng_core.evaluation.tradeoff import check_sweep, tradeoff_curve

        _check_records(records_by_category)
        self.adapter._check_layer(layer)
        cases = list(cases)
        if values is not None:
            values = check_sweep(param, values, cases)
        n_tok = max_new_tokens or self.max_new_tokens

        def work(prog):
            return tradeoff_curve(self.adapter, records_by_category, int(layer), cases, param=param, values=values,
                                  mask_cfg=mask_cfg, edit_cfg=edit_cfg, control=control, seed=seed, masks=masks,
                                  max_new_tokens=n_tok, progress=prog)

        def keep(result: dict):
            with self._lock:
                self.tradeoff = result
                self._log("tradeoff", f"trade-off over {param}: {len(result['points'])} points")

        return self._start("tradeoff", work, keep, f"trade-off curve over {param} at layer {layer}")

    def load_tradeoff(self, source) -> dict:
        """A saved trade-off JSON (path, text or bytes) becomes ``self.tradeoff``."""
        from ng_core.evaluation.tradeoff import load_tradeoff

        res = load_tradeoff(source)
        with self._lock:
            self.tradeoff = res
        return res

    #: Evaluation variants of a session: name -> (evaluate method, uses gates, uses edit).
    EVAL_VARIANTS = {
        "base": ("unedited", False, False),
        "system_prompt": ("system_prompt", False, False),
        "gates": ("inference_gate", True, False),
        "edit": ("edited", False, True),
    }

    def start_evaluate(self, cases: list[EvalCase], variants: list[str] | None = None,
                       max_new_tokens: int | None = None, runs: dict[str, Run] | None = None,
                       nll: bool = False) -> Job:
        """Evaluate ``cases`` under each variant with ``evaluate.evaluate_cases``.

        Variants: ``base`` (the unedited model), ``system_prompt`` (the in-context defence),
        ``gates`` (this session's gates), ``edit`` (this session's edit), and the keys of ``runs``
        (saved edit runs). The base answers are computed once and reused as every other
        variant's locality reference. The result is ``{"results": {variant: result dict},
        "rows": [per-case rows, each with its "variant"]}``.
        """
        try:
            from ng_core.evaluation.evaluate import evaluate_cases
        except ImportError as e:
            raise NGError("evaluation is not available yet: the package ng_core.evaluation.evaluate is missing "
                          f"({e}); the other pages work without it") from None
        if not cases:
            raise NGError("no cases to evaluate: choose at least one split with cases")
        variants = list(dict.fromkeys(variants or ["base"]))
        runs = dict(runs or {})
        plan = []
        for v in variants:
            if v in self.EVAL_VARIANTS:
                method, use_g, use_d = self.EVAL_VARIANTS[v]
                gates, deltas = (list(self.gates) if use_g else []), (list(self.deltas) if use_d else [])
                if use_g and not gates:
                    raise NGError("the variant 'gates' needs active gates (set them on the Gates page)")
                if use_d and not deltas:
                    raise NGError("the variant 'edit' needs an edit: run or load one first")
                plan.append((v, method, gates, deltas, None))
            elif v in runs:
                if runs[v].kind != "edit":
                    raise NGError(f"{v} is a {runs[v].kind} run, not an edit run")
                plan.append((v, "edited", [], runs[v].deltas(), runs[v].path.name if runs[v].path else v))
            else:
                raise NGError(f"unknown variant {v!r}")
        plan.sort(key=lambda p: p[0] != "base")  # the base first: its answers are everyone's reference
        n_tok = max_new_tokens or self.max_new_tokens
        cases = list(cases)

        def work(prog):
            results, rows, pre = {}, [], None
            for name, method, gates, deltas, run_name in plan:
                res = evaluate_cases(self.adapter, cases, gates=gates, deltas=deltas, method=method,
                                     max_new_tokens=n_tok, progress=prog, pre_answers=pre, nll=nll,
                                     run=run_name, extra={"variant": name})
                if method == "unedited":
                    pre = res
                results[name] = res
                rows.extend(dict(r, variant=name) for r in res["cases"])
            return {"results": results, "rows": rows}

        return self._start("evaluate", work, None, f"evaluate {len(cases)} cases x {len(plan)} variant(s)")

    # ------------------------------------------------------------------ ground truth of the current image
    _secrets: tuple = (-1, ())  # (image version, values): values hold only while that image is current

    def set_secrets(self, secrets) -> None:
        """The true private values drawn on the current image (a dataset record's ``secrets``), for
        :mod:`ng_core.evaluation.leaks`; forgotten as soon as the image changes. Call after :meth:`set_image`."""
        with self._lock:
            self._secrets = (self._image_version, tuple(s for s in (secrets or ()) if isinstance(s, str)))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The current image's true private values (empty for uploads and images without ground truth)."""
        version, values = self._secrets
        return values if version == self._image_version else ()

    def cancel_job(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def close(self) -> None:
        """Cancel running work and drop the session's private image cache (e.g. when the session ends)."""
        self.cancel_job()
        self.private_cache.clear()
        with self._lock:
            self._memo.clear()
            self._drafts.clear()

    # ------------------------------------------------------------------ neuron detail
    def neuron_activations(self, records: list[ImageRecord], layer: int, unit: str = "residual",
                           position: str = "subject", max_pairs: int = 12) -> dict:
        """Activations of every neuron of ``layer`` on matched privacy vs benign prompts.

        Returns ``{"sensitive": [n, size], "benign": [n, size], "pairs": [(image, sensitive, benign)]}``
        (base model, no interventions).
        """
        from ng_core.method.scores import capture_activations, pairs_from_records

        pairs = pairs_from_records(records, max_pairs)
        if not pairs:
            raise NGError("no (privacy, benign) prompt pairs to compare")
        items = [(im, s, subj) for im, s, _, subj, _ in pairs] + [(im, b, subj) for im, _, b, subj, _ in pairs]
        with private_scope(self.private_cache):
            acts = capture_activations(self.adapter, items, [int(layer)], position)
        a = acts[unit][:, 0]
        n = len(pairs)
        return {"sensitive": a[:n], "benign": a[n:], "pairs": [(str(im), s, b) for im, s, b, _, _ in pairs]}


def _gates_sig(gates) -> tuple:
    out = []
    for g in gates:
        sc = g.scale
        sc = hashlib.sha1(sc.detach().float().numpy().tobytes()).hexdigest() if isinstance(sc, torch.Tensor) \
            else float(sc)
        out.append((g.layer, g.unit, g.where, sc, hashlib.sha1(g.neurons.numpy().tobytes()).hexdigest()))
    return tuple(out)


def _deltas_sig(deltas) -> tuple:
    return tuple((d.layer, hashlib.sha1(d.delta.detach().float().contiguous().numpy().tobytes()).hexdigest())
                 for d in deltas)


def behaviour_rates(cases: list[EvalCase], answers: list[Answer]) -> dict:
    """Privacy refusal rate (``expect="refuse"`` judged refused) and benign answer rate
    (``expect="answer"`` answered: not refused, not empty and not garbled, :func:`ng_core.evaluation.leaks.answered`)."""
    from ng_core.evaluation.leaks import answered as _answered

    ref = [a for c, a in zip(cases, answers) if c.expect == "refuse"]
    ans = [a for c, a in zip(cases, answers) if c.expect == "answer"]
    return {"n_refuse": len(ref), "n_answer": len(ans),
            "refusal_rate": sum(a.refused is True for a in ref) / len(ref) if ref else None,
            "benign_answer_rate": sum(_answered(a.text, a.refused is True) for a in ans) / len(ans) if ans else None}


def answer_counts(cases: list[EvalCase], answers: list[Answer]) -> dict:
    """Leaked / refused / answered counts of ``answers`` to ``cases`` (:func:`ng_core.evaluation.leaks.outcome_counts`:
    a leak is a case's true private value in its answer; only cases with ``secrets`` can leak)."""
    from ng_core.evaluation.leaks import outcome_counts

    return outcome_counts((a.text, a.refused, c.secrets) for c, a in zip(cases, answers))


def _check_records(records_by_category: dict) -> None:
    if not records_by_category or not any(records_by_category.values()):
        raise NGError("no training images: choose at least one category (or the current image)")
    empty = [c for c, r in records_by_category.items() if not r]
    if empty:
        raise NGError(f"no training images for {', '.join(empty)}")


def _rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


__all__ = ["Answer", "answer_counts", "CONTROL_METHODS", "CURRENT", "DEFAULT_STALE_AFTER", "EditPair", "PAIR_VARIANTS",
           "behaviour_rates", "GATE_WHERE_HELP", "Job", "NeuronView", "neuron_view", "run_units",
           "run_method", "run_categories", "StudioSession", "guess_subject", "judge_available",
           "judge_text", "load_model_job", "PrivateImage", "record_from_inputs", "sample_dataset"]
