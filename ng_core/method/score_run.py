"""A ``scores`` run: a neuron score's per-layer arrays in a run bundle, ready for a layers x neurons heatmap.

The score is read from its record (:attr:`ng_core.method.registry.Method.score`; the shipped ones are computed in
:mod:`ng_core.method.scores`), so a new neuron score is one record in the registry.
"""
from __future__ import annotations

import torch

from ng_core.data.records import ImageRecord
from ng_core.method.bundle import Run
from ng_core.method.localize import MaskConfig
from ng_core.method.registry import SCORE, find_method, names
from ng_core.method.scores import POSITIONS, ScoreConfig, pairs_from_records


def compute_scores(adapter, records: list[ImageRecord], cfg: ScoreConfig | None = None,
                   mask_cfg: MaskConfig | None = None, progress=None, seed: int = 0) -> Run:
    """A ``scores`` run bundle with arrays ready for a layers x neurons heatmap."""
    cfg = cfg or ScoreConfig()
    m = find_method(cfg.method)
    if m is None or m.kind != SCORE:
        raise ValueError(f"unknown scoring method {cfg.method!r}; use one of {', '.join(names(SCORE))}")
    if cfg.position not in POSITIONS:
        raise ValueError(f"unknown position {cfg.position!r}; use one of {', '.join(POSITIONS)}")
    if not records:
        raise ValueError("no records to score")
    torch.manual_seed(seed)
    t = m.score(adapter, records, cfg, mask_cfg, progress)
    layers = list(cfg.layers) if cfg.layers is not None else list(range(adapter.n_layers))
    run = Run.new("scores", adapter, {"scores": cfg.to_dict(), "mask": (mask_cfg or MaskConfig()).to_dict()
                                      if m.learned else None,
                                      "categories": sorted({r.category for r in records}), "layers": layers},
                  {"seed": seed})
    run.tensors["scores"] = {k: v.float() for k, v in t.items()}
    run.metrics["prompts"] = [{"image": str(im), "sensitive": s, "benign": b}
                              for im, s, b, _, _ in pairs_from_records(records, cfg.max_pairs)]
    return run
