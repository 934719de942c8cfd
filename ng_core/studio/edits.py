"""Edits: the session's weight edit (ΔW of ``down_proj``), how it is applied, reverted and fingerprinted,
the edit jobs, and an edit paired with its random-gate control.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch

from ng_core.data.records import EvalCase, ImageRecord
from ng_core.errors import BundleError, NGError
from ng_core.method import pipeline
from ng_core.method.bundle import Run
from ng_core.method.edit import EditConfig
from ng_core.method.interventions import Delta
from ng_core.method.registry import BASELINE, EDIT, get_method, methods
from ng_core.studio.answers import CURRENT, behaviour_rates
from ng_core.studio.inputs import check_records
from ng_core.studio.jobs import Job


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


class EditsMixin:
    """The session's edit, the edit jobs and the learned-edit / control pair."""

    @property
    def has_edit(self) -> bool:
        return bool(self.deltas)

    @property
    def edit_version(self) -> int:
        return self.shared.edit_version

    def apply_edit(self, deltas: list[Delta], run: Run | None = None, label: str = "edit") -> None:
        for d in deltas:
            W = self.adapter.down_proj(d.layer).weight
            if tuple(d.delta.shape) != tuple(W.shape):
                raise BundleError(f"ΔW for layer {d.layer} has shape {tuple(d.delta.shape)}, "
                                  f"down_proj has {tuple(W.shape)}")
        with self.shared.lock:
            self.deltas = list(deltas)
            self.edit_run = run
            if self.edit_pair is not None and not any(run is r for r in (self.edit_pair.learned,
                                                                           self.edit_pair.control)):
                self.edit_pair = None  # another edit replaces the pair
            self.shared.edit_version += 1
            self._log("edit", f"{label}: " + "; ".join(d.describe() for d in deltas))

    def revert(self) -> None:
        """Drop the current edit: the session answers with the base weights again (exactly)."""
        with self.shared.lock:
            had = bool(self.deltas)
            self.deltas, self.edit_run = [], None
            self.shared.edit_version += 1
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

    def start_edit(self, records_by_category: dict[str, list[ImageRecord]], layer: int, mask_cfg=None,
                   edit_cfg=None, seed: int = 0, masks: dict | None = None) -> Job:
        """A Neural Gate edit or a baseline (``pipeline.edit_run``); on success its ΔW becomes the session's edit."""
        check_records(records_by_category)
        self.adapter.check_layer(layer)
        edit_cfg = edit_cfg or EditConfig()

        def work(prog):
            return pipeline.edit_run(self.adapter, records_by_category, int(layer), mask_cfg, edit_cfg, prog, seed, masks)

        def apply(run: Run):
            label = f"edit ({edit_cfg.method}, {edit_cfg.gate_scope})" if get_method(edit_cfg.method).gated else \
                f"edit ({edit_cfg.method})"
            self.apply_edit([replace(d, label=f"{label} L{d.layer}") for d in run.deltas()], run, label)

        return self._start("edit", work, apply, f"{edit_cfg.method} edit at layer {layer}")

    def start_edit_with_control(self, records_by_category: dict[str, list[ImageRecord]], layer: int,
                                mask_cfg=None, edit_cfg=None, seed: int = 0, masks: dict | None = None) -> Job:
        """The edit and its random-gate control in one job (``pipeline.edit_with_control``).

        The result is an :class:`EditPair`; on success the learned edit becomes the session's edit
        and the pair ``self.edit_pair`` (switch with :meth:`use_pair`).
        """
        check_records(records_by_category)
        self.adapter.check_layer(layer)
        edit_cfg = edit_cfg or EditConfig()
        if not get_method(edit_cfg.method, EDIT).takes_control:
            raise NGError(f"a random-gate control of a {edit_cfg.method} edit means nothing; it is for "
                          f"{', '.join(m.name for m in methods(EDIT) if m.takes_control)}")

        def work(prog):
            return EditPair(*pipeline.edit_with_control(self.adapter, records_by_category, int(layer), mask_cfg, edit_cfg,
                                               prog, seed, masks))

        def apply(pair: EditPair):
            with self.shared.lock:
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

    def pair_answers(self, image=CURRENT, prompt: str | None = None, *, subject: str | None = None,
                     max_new_tokens: int | None = None) -> dict:
        """{variant: Answer} for the unedited model, the learned edit and its control (gates off)."""
        p = self._need_pair()
        kw = {"subject": subject, "max_new_tokens": max_new_tokens}
        return {BASELINE: self.ask(image, prompt, interventions=False, **kw),
                "learned": self.ask(image, prompt, interventions=p.learned, **kw),
                "control": self.ask(image, prompt, interventions=p.control, **kw)}

    def pair_batch(self, cases: list[EvalCase], max_new_tokens: int | None = None) -> dict:
        """Each case answered unedited, with the learned edit and with its control, judged, with rates.

        Returns ``{"cases", "answers": {variant: [Answer]}, "rates": {variant: behaviour_rates}}``.
        """
        p = self._need_pair()
        cases = list(cases)
        items = [(str(c.image) if c.image is not None else None, c.prompt, c.subject or None) for c in cases]
        answers = {v: self.answer_batch(items, interventions=w, max_new_tokens=max_new_tokens)
                   for v, w in ((BASELINE, False), ("learned", p.learned), ("control", p.control))}
        return {"cases": cases, "answers": answers,
                "rates": {v: behaviour_rates(cases, a) for v, a in answers.items()}}

    def _need_pair(self) -> EditPair:
        if self.edit_pair is None:
            raise NGError("there is no edit with a control: run an edit with 'Also run a random-gate control'")
        return self.edit_pair
