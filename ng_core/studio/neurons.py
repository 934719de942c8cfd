"""Neurons: what localization found, as layers x neurons arrays with a selection (:class:`NeuronView`), the
localize and scores jobs that make those runs, and raw activations of one layer for the neuron detail.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ng_core.data.records import ImageRecord
from ng_core.errors import ArgumentError, NGError
from ng_core.method import pipeline
from ng_core.method.bundle import Run
from ng_core.method.localize import reselect
from ng_core.method.registry import SCORE, find_method, names
from ng_core.method.score_run import compute_scores
from ng_core.method.scores import POSITIONS, ScoreConfig, capture_activations, pairs_from_records
from ng_core.models.imagecache import private_scope
from ng_core.studio.inputs import check_records
from ng_core.studio.jobs import Job


def check_score_inputs(records: list[ImageRecord], cfg: ScoreConfig) -> None:
    """Refuse, before a scores job starts, what :func:`compute_scores` would fail on inside it.

    Why: one uploaded image gives one (privacy, benign) pair, and a paired contrast needs two.
    """
    m = find_method(cfg.method)
    if m is None or m.kind != SCORE:
        raise ArgumentError(f"unknown scoring method {cfg.method!r}; use one of {', '.join(names(SCORE))}")
    if cfg.position not in POSITIONS:
        raise ArgumentError(f"unknown token position {cfg.position!r}; use one of {', '.join(POSITIONS)}")
    need = m.min_pairs
    n = len(pairs_from_records(records, cfg.max_pairs))
    if n < need:
        raise NGError(f"{cfg.method} scores compare at least {need} (privacy, benign) prompt pair(s); these inputs "
                      f"give {n}: add dataset categories, or use the learned mask")


@dataclass
class NeuronView:
    """Layers x neurons arrays of one run, with a selection: what the heatmap, table and gates show."""

    method: str  # mask | gradxact | contrast
    unit: str  # residual | ffn
    layers: list
    score: np.ndarray  # [L, N] float32
    freq: np.ndarray | None  # [L, N] float32 in 0..1, or None
    selected: np.ndarray  # [L, N] bool
    categories: list = field(default_factory=list)
    rule: str = ""

    @property
    def score_label(self) -> str:
        m = find_method(self.method)
        return (m.score_label if m is not None else "") or "score"

    @property
    def freq_label(self) -> str:
        m = find_method(self.method)
        return m.freq_label if m is not None else ""

    def counts(self) -> dict[int, int]:
        return {l: int(self.selected[i].sum()) for i, l in enumerate(self.layers)}

    def selection(self) -> dict[int, list[int]]:
        """{layer: selected neuron ids}."""
        return {l: [int(n) for n in np.flatnonzero(self.selected[i])] for i, l in enumerate(self.layers)}

    def top_per_layer(self, k: int, only_selected: bool = False) -> dict[int, list[int]]:
        """{layer: the ``k`` highest-scoring neurons} (optionally among the selected ones)."""
        out = {}
        for i, l in enumerate(self.layers):
            sc = np.where(self.selected[i], self.score[i], -np.inf) if only_selected else self.score[i]
            order = np.argsort(-sc, kind="stable")[: max(0, int(k))]
            out[l] = [int(n) for n in order if np.isfinite(sc[n])]
        return out

    def rows(self, limit: int | None = None, only_selected: bool = False) -> list[dict]:
        """Table rows (layer, neuron, score, frequency, selected), highest score first."""
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


class LocalizationMixin:
    """The session's localization run: the jobs that make one, and activations for the neuron detail."""

    def start_localize(self, records_by_category: dict[str, list[ImageRecord]], layers: list[int],
                       mask_cfg=None, seed: int = 0, with_edit: bool = True) -> Job:
        """Stages A+B per category (``pipeline.localize_run``); the run becomes the session's localization."""
        check_records(records_by_category)
        deltas = list(self.deltas) if with_edit else []

        def work(prog):
            return pipeline.localize_run(self.adapter, records_by_category, list(layers), mask_cfg, prog, seed, deltas)

        return self._start("localize", work, self._set_localization,
                           f"localize {', '.join(sorted(records_by_category))} at layers {list(layers)}")

    def start_scores(self, records: list[ImageRecord], score_cfg=None, mask_cfg=None, seed: int = 0) -> Job:
        """Per-layer neuron scores (``score_run.compute_scores``); the run becomes the session's localization."""
        score_cfg = score_cfg or ScoreConfig()
        if not records:
            raise NGError("no images to score: choose at least one category")
        check_score_inputs(records, score_cfg)

        def work(prog):
            return compute_scores(self.adapter, list(records), score_cfg, mask_cfg, prog, seed)

        return self._start("scores", work, self._set_localization, f"{score_cfg.method} scores")

    def _set_localization(self, run: Run) -> None:
        with self.shared.lock:
            self.localization = run
            self._log(run.kind, f"{run.kind} run ready ({', '.join(run.config.get('categories', []))})")

    def neuron_activations(self, records: list[ImageRecord], layer: int, unit: str = "residual",
                           position: str = "subject", max_pairs: int = 12) -> dict:
        """Activations of every neuron of ``layer`` on matched privacy vs benign prompts.

        Returns ``{"sensitive": [n, size], "benign": [n, size], "pairs": [(image, sensitive, benign)]}``
        (base model, no interventions).
        """
        pairs = pairs_from_records(records, max_pairs)
        if not pairs:
            raise NGError("no (privacy, benign) prompt pairs to compare")
        items = [(im, s, subj) for im, s, _, subj, _ in pairs] + [(im, b, subj) for im, _, b, subj, _ in pairs]
        with private_scope(self.shared.private_cache):
            acts = capture_activations(self.adapter, items, [int(layer)], position)
        a = acts[unit][:, 0]
        n = len(pairs)
        return {"sensitive": a[:n], "benign": a[n:], "pairs": [(str(im), s, b) for im, s, b, _, _ in pairs]}
