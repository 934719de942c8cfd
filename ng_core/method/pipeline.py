"""The whole Neural Gate method over several categories, as the authors' code runs it.

Categories are processed in sorted order (the code used ``os.listdir`` order, which is
not reproducible). For each category: masks (Stages A+B) on the model *with the edits
made so far*, then gated fine-tuning (Stage C) continuing the same ΔW. The result is
a :class:`~ng_core.method.bundle.Run` with masks, per-category and total deltas, losses and
diagnostics.
"""
from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np
import torch

from ng_core.method.bundle import Run
from ng_core.method.edit import EditConfig, edit_items, gated_finetune
from ng_core.method.interventions import Delta
from ng_core.method.locality import LocalityCache
from ng_core.method.localize import CategoryMask, MaskConfig, localize_category
from ng_core.method.registry import EDIT, RANDOM_CONTROL, get_method
from ng_core.progress import as_progress
from ng_core.data.records import ImageRecord


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def localize_run(adapter, records_by_category: dict[str, list[ImageRecord]], layers: list[int],
                 mask_cfg: MaskConfig | None = None, progress=None, seed: int = 0,
                 deltas: list[Delta] = ()) -> Run:
    """Stages A+B for each category (no edit); a ``localize`` run bundle."""
    mask_cfg = mask_cfg or MaskConfig()
    set_seed(seed)
    run = Run.new("localize", adapter, {"mask": mask_cfg.to_dict(), "layers": list(layers),
                                       "categories": sorted(records_by_category)}, {"seed": seed})
    loc = LocalityCache(adapter)
    t0 = time.monotonic()
    for cat in sorted(records_by_category):
        cms = localize_category(adapter, records_by_category[cat], layers, mask_cfg, deltas, progress, loc)
        _store_masks(run, cat, cms)
    run.metrics["localize_seconds"] = time.monotonic() - t0
    return run


def _store_masks(run: Run, cat: str, cms: dict[int, CategoryMask]) -> None:
    for l, cm in cms.items():
        run.tensors["masks"][f"{cat}/L{l}/raw"] = cm.raw
        run.tensors["masks"][f"{cat}/L{l}/freq"] = cm.freq
        run.tensors["masks"][f"{cat}/L{l}/selected"] = cm.selected.to(torch.uint8)
        run.metrics.setdefault("masks", {}).setdefault(cat, {})[f"L{l}"] = {
            "n_selected": cm.n_selected, "n_images": int(cm.raw.shape[0]),
            "final_losses": [h[-1] if h else None for h in cm.losses],
        }


def edit_run(adapter, records_by_category: dict[str, list[ImageRecord]], layer: int,
             mask_cfg: MaskConfig | None = None, edit_cfg: EditConfig | None = None, progress=None,
             seed: int = 0, masks: dict | None = None) -> Run:
    """Neural Gate (or a baseline ``edit_cfg.method``) over the categories; an ``edit`` run bundle.

    ``masks`` ({category: {layer: CategoryMask}}, e.g. from a localize run) skips
    Stages A+B for the categories it covers.
    """
    mask_cfg = mask_cfg or MaskConfig()
    edit_cfg = edit_cfg or EditConfig()
    prog = as_progress(progress)
    set_seed(seed)
    run = Run.new("edit", adapter, {"mask": mask_cfg.to_dict(), "edit": edit_cfg.to_dict(), "layer": layer,
                                   "categories": sorted(records_by_category)}, {"seed": seed})
    loc = LocalityCache(adapter)
    masks = masks or {}
    total: torch.Tensor | None = None
    t0 = time.monotonic()
    losses, diags = {}, {}
    method = get_method(edit_cfg.method, EDIT)
    for cat in sorted(records_by_category):
        recs = records_by_category[cat]
        current = [Delta(layer, total)] if total is not None else []
        if not method.needs_masks:
            selected = torch.ones(adapter.hidden_size, dtype=torch.bool)
        else:
            cm = masks.get(cat, {}).get(layer)
            if cm is None:
                cm = localize_category(adapter, recs, layer, mask_cfg, current, prog, loc)[layer]
            _store_masks(run, cat, {layer: cm})
            selected = cm.selected
        gate = method.gate(selected, seed)
        items = edit_items(recs, edit_cfg, loc)
        res = gated_finetune(adapter, items, layer, gate, edit_cfg, init_delta=total, progress=prog, label=cat)
        change = res.delta - (total if total is not None else 0)
        run.tensors["deltas"][f"{cat}/L{layer}"] = change
        run.tensors["deltas"][f"{cat}/L{layer}/gate"] = gate.to(torch.uint8)
        total = res.delta
        losses[cat] = res.losses
        diags[cat] = res.diagnostics | {"gate_size": int(gate.sum()), "n_edits": len(items)}
    if total is None:
        total = torch.zeros_like(adapter.down_proj(layer).weight, dtype=torch.float32)
    run.tensors["deltas"][f"L{layer}"] = total
    run.metrics.update({"edit_seconds": time.monotonic() - t0, "losses": losses, "diagnostics": diags})
    return run


def edit_with_control(adapter, records_by_category: dict[str, list[ImageRecord]], layer: int,
                      mask_cfg: MaskConfig | None = None, edit_cfg: EditConfig | None = None, progress=None,
                      seed: int = 0, masks: dict | None = None) -> tuple[Run, Run]:
    """The edit and, as a control, the same edit with a random gate of the same size per category.

    The control reuses the edit's masks (so only *which* neurons are gated differs) and
    records the learned run's path-independent gate sizes; compare the two with the
    evaluation to see whether the learned localisation matters.
    """
    edit_cfg = edit_cfg or EditConfig()
    prog = as_progress(progress)
    main = edit_run(adapter, records_by_category, layer, mask_cfg, edit_cfg, prog.phase(0, 2, "learned gate"),
                    seed, masks)
    learned = main.masks()
    ctrl = edit_run(adapter, records_by_category, layer, mask_cfg, replace(edit_cfg, method=RANDOM_CONTROL),
                    prog.phase(1, 2, "random-gate control"), seed, masks=learned)
    ctrl.config["control_of"] = {"method": edit_cfg.method, "seed": seed}
    return main, ctrl
