"""The small, typed API the dashboard uses: one :class:`StudioSession` per browser session.

The shared model (a :class:`~ng_core.models.HFVLMAdapter`) is never mutated. A session
holds its own state:

- the current image (kept in the session's memory only) and prompt; features and locality
  answers of uploads stay in the session's :class:`~ng_core.models.imagecache.PrivateCache`, never in
  the shared adapter's caches (only dataset files on disk go there),
- active gates (:class:`~ng_core.method.interventions.Gate`) and the current edit
  (:class:`~ng_core.method.interventions.Delta`), applied as scoped hooks for each call,
- the latest localization / scores run and the run the edit came from.

The class is assembled here from one mixin per concern, each in its own module:
:mod:`.inputs` (image, prompt, ground truth), :mod:`.answers` (asking the model),
:mod:`.gates`, :mod:`.edits` (the edit, edit jobs, the edit / control pair), :mod:`.neurons`
(localization jobs and views), :mod:`.evaluation` (evaluate and trade-off jobs), :mod:`.runs`
(the runs folder) and :mod:`.jobs` (long work on a worker thread). This module holds the state
they share (``shared``: a :class:`~ng_core.studio.state.SharedState` with the lock, memo, drafts, prefix memo,
private cache and version counters), the model facts and the ledger (``_log``).

The studio only composes the core (``pipeline``, ``scores``, ``interventions``, ``bundle``,
``data``, ``judge``, ``evaluate``); it holds no algorithm of its own and never imports a UI library.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ng_core.method.bundle import Run
from ng_core.method.interventions import Delta, Gate
from ng_core.models.imagecache import PrivateCache
from ng_core.studio.answers import CURRENT, AnswersMixin
from ng_core.studio.edits import EditPair, EditsMixin
from ng_core.studio.evaluation import EvaluationMixin
from ng_core.studio.gates import GatesMixin
from ng_core.studio.heldout import preparing_job
from ng_core.studio.inputs import InputsMixin, record_from_inputs
from ng_core.studio.jobs import DEFAULT_STALE_AFTER, Job, JobsMixin
from ng_core.studio.neurons import LocalizationMixin
from ng_core.studio.presets import Preset
from ng_core.studio.runs import RunsMixin
from ng_core.studio.state import SharedState


@dataclass(frozen=True)
class ModelFacts:
    """What the pages show and size their controls by: the loaded model's name, shape and weights."""

    id: str
    n_layers: int
    hidden_size: int
    ffn_size: int
    n_parameters: int
    fingerprint: str  # of the weights: a run or a sweep measured on other weights says so
    reads: bool  # the model reads text off images (an OCR reading block in its prompt)


class StudioSession(InputsMixin, AnswersMixin, GatesMixin, EditsMixin, LocalizationMixin, EvaluationMixin,
                    RunsMixin, JobsMixin):
    """One browser session's view of the shared model: inputs, gates, edit, runs and jobs."""

    def __init__(self, adapter, *, runs_dir="runs", max_new_tokens: int = 32,
                 stale_after: float | None = DEFAULT_STALE_AFTER, delete_any_run: bool = False):
        """``stale_after``: a job of this session not heartbeated for that long cancels itself (None: never).
        ``delete_any_run``: allow deleting runs this session did not save (a single-user machine); by default
        a shared runs folder only lets the session that saved a run delete it."""
        self.adapter = adapter
        self.delete_any_run = bool(delete_any_run)
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
        #: what the concerns share: lock, answer memo, drafts, prefix memo, private cache, version counters
        self.shared = SharedState()

    @property
    def private_cache(self) -> PrivateCache:
        """Features and locality answers of in-memory images (uploads): never in the shared adapter."""
        return self.shared.private_cache

    # ------------------------------------------------------------------ model facts
    @property
    def model(self) -> ModelFacts:
        a = self.adapter
        if getattr(self, "_facts", None) is None or self._facts[0] is not a:
            self._facts = (a, ModelFacts(a.model_id, a.n_layers, a.hidden_size, a.ffn_size, a.n_parameters(), a.fingerprint(),
                                         bool(getattr(a, "reads", False))))
        return self._facts[1]

    @property
    def preset(self) -> Preset:
        """The loaded model's preset (:class:`~ng_core.studio.presets.Preset`)."""
        return Preset.load(self.adapter.model_id, self.adapter.n_layers)

    def serves(self, adapter) -> bool:
        """True when this session answers with ``adapter`` (the model a loading job returned)."""
        return self.adapter is adapter

    def prepare_heldout(self, folder, category: str, n_cards: int = 4, max_new_tokens: int | None = None) -> Job:
        """Start the guided demo's before/after preparation on this session's model (its held-out cards drawn into
        ``folder``, read and screened unedited) on a worker that waits for quiet moments, with a session of its own
        (:func:`~ng_core.studio.heldout.preparing_job`); this session's job slot stays free."""
        return preparing_job(lambda: StudioSession(self.adapter, runs_dir=folder, stale_after=None), folder, category,
                             n_cards, max_new_tokens)

    def record(self, prompt: str, subject: str, target: str = "I cannot", benign_prompt: str | None = None,
               category: str = "current", image=CURRENT):
        """An :class:`ImageRecord` of ``image`` (default: the current one) and ``prompt``, its texts checked
        against this model's context (:func:`~ng_core.studio.inputs.record_from_inputs`)."""
        return record_from_inputs(self.image if image is CURRENT else image, prompt, subject, target, benign_prompt,
                                  category=category, adapter=self.adapter)

    def check_run(self, run: Run) -> None:
        """Raise :class:`~ng_core.errors.BundleError` when ``run`` was made on other weights than this model's."""
        run.check_model(self.adapter)

    def model_info(self) -> dict:
        a = self.adapter
        n = a.n_parameters()
        nbytes = sum(p.numel() * p.element_size() for p in a.model.parameters())
        return {"model": a.model_id, "source": a.source, "layers": a.n_layers, "hidden_size": a.hidden_size,
                "ffn_size": a.ffn_size, "parameters": n, "weights_bytes": nbytes, "dtype": str(a.dtype),
                "image_tokens": a.n_image_tokens, "fingerprint": a.fingerprint(), "process_rss_bytes": _rss(),
                **a.family_info()}

    def _log(self, event: str, detail: str) -> None:
        """One line in the session's model-state ledger (what changed, keyed by the edit fingerprint)."""
        self.ledger.append({"time": time.strftime("%H:%M:%S"), "event": event, "detail": detail,
                            "state": self.edit_fingerprint()})
        del self.ledger[:-200]

    def close(self) -> None:
        """Cancel running work and drop the session's private image cache (e.g. when the session ends)."""
        self.cancel_job()
        self.private_cache.clear()
        self.shared.forget_answers()


def _rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # deferred: a Unix-only module, needed only where /proc is missing

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


__all__ = ["ModelFacts", "StudioSession"]
