"""What determines an ``ng report``: its configuration, the method names and variants, and the stage order.

Kept apart from the runner (:mod:`ng_core.evaluation.report_runner`) and the Markdown
(:mod:`ng_core.evaluation.report_render`) so that ``ng sweep``, the CLI and the tests can name methods and
build configurations without loading a model.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from ng_core.errors import NGError
from ng_core.evaluation.probe_cases import GENERAL_SPLIT
from ng_core.method.registry import BASELINE, LEARNED, RANDOM_CONTROL, find_method, report_methods

EDITED_SPLITS = ("train", "heldout_images", "heldout_templates")
GENERAL = GENERAL_SPLIT  # the split of the held-out general questions
SPLIT_TITLES = {"train": "edited prompts", "heldout_images": "held-out images",
                "heldout_templates": "held-out templates", "unseen_categories": "unseen categories",
                "benign_controls": "benign controls", "utility_probe": "utility probe",
                GENERAL: "general questions"}


class ReportError(NGError):
    """A report cannot be run with these settings."""


@dataclass
class ReportConfig:
    """Everything that determines a report. ``None`` means: the model's preset value."""

    model: str = "ng-mini-llava"
    data: str | None = None  # dataset folder; None: generate into WORKDIR/data
    data_seed: int = 0
    per_category: int = 20
    categories: tuple = ("passport", "phone_number", "receipt", "student_id")
    methods: tuple = field(default_factory=report_methods)
    layer: int | None = None
    max_images: int | None = None  # train images per category used for editing
    questions: int | None = None  # paraphrases per image in Stage C
    edit_steps: int | None = None
    mask_steps: int | None = None
    lr: float | None = None
    gate_scope: str | None = None
    topk: float | None = None  # Stage B: flag the fraction of smallest m per image instead of tanh(m) < 0 (preset)
    threshold: float | None = None  # Stage B: consensus threshold, strict (preset)
    images_per_cell: int | None = None  # evaluate only the first N images per (split, category); None: all
    probe_per_category: int = 1
    max_new_tokens: int = 24
    batch_size: int = 8
    seed: int = 0
    seeds: tuple = ()  # extra seeds: Neural Gate and its random-gate control again, each on its own image subset
    seed_controls: tuple = (RANDOM_CONTROL,)  # the controls rerun at each extra seed (also: "complement_gate")
    sweep_lrs: tuple = ()  # extra Stage C learning rates: Neural Gate and the random gate at each (trade-off)
    general: bool = True  # also ask the held-out general questions (collateral refusals)
    order: str = "forward"  # "reverse": compute the stages from the last (a second worker on the same workdir)
    workdir: str = "out/report"
    out: str = "RESULTS.md"
    fresh: bool = False
    note: str = ""
    render_only: bool = False  # write RESULTS.md from the cache only; methods not computed yet are left out
    probe_dir: str | None = None  # where the utility probe's colour swatches go (None: WORKDIR/probe)
    device_map: str | None = None  # accelerate device map of the model, e.g. "cuda" (None: CPU)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["categories"] = list(self.categories)
        d["methods"] = list(self.methods)
        d["seeds"] = list(self.seeds)
        d["seed_controls"] = list(self.seed_controls)
        d["sweep_lrs"] = list(self.sweep_lrs)
        return d

    def command(self) -> str:
        """The `ng report` command line that reproduces this configuration."""
        dflt = ReportConfig()
        parts = ["ng report"]
        flags = {"model": "--model", "data": "--data", "data_seed": "--data-seed", "per_category": "--per-category",
                 "layer": "--layer", "max_images": "--max-images", "questions": "--questions",
                 "edit_steps": "--edit-steps", "mask_steps": "--mask-steps", "lr": "--lr", "gate_scope": "--gate-scope",
                 "topk": "--topk", "threshold": "--threshold", "device_map": "--device-map",
                 "images_per_cell": "--images-per-cell", "probe_per_category": "--probe-per-category",
                 "max_new_tokens": "--max-new-tokens", "batch_size": "--batch-size", "seed": "--seed",
                 "workdir": "--workdir", "out": "--out"}
        for k, flag in flags.items():
            v = getattr(self, k)
            if v != getattr(dflt, k) or k == "model":
                parts.append(f"{flag} {v}")
        if tuple(self.categories) != dflt.categories:
            parts.append("--categories " + ",".join(self.categories))
        if tuple(self.methods) != dflt.methods:
            parts.append("--methods " + ",".join(self.methods))
        if self.seeds:
            parts.append("--seeds " + ",".join(str(x) for x in self.seeds))
        if tuple(self.seed_controls) != dflt.seed_controls:
            parts.append("--seed-controls " + ",".join(self.seed_controls))
        if self.sweep_lrs:
            parts.append("--sweep-lr " + ",".join(f"{x:g}" for x in self.sweep_lrs))
        if not self.general:
            parts.append("--no-general")
        return " ".join(parts)


def check_methods(methods) -> None:
    """Refuse method names a report does not know, before anything is loaded."""
    known = report_methods()
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ReportError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(known)}")


def variant(base: str, seed: int | None = None, lr: float | None = None) -> str:
    """Name of an extra edit: ``neural_gate@seed=1``, ``random_gate@lr=0.0003``."""
    return base + ("" if seed is None else f"@seed={seed}") + ("" if lr is None else f"@lr={lr:g}")


def parse_variant(name: str) -> tuple[str, dict]:
    base, *opts = name.split("@")
    kv: dict = {}
    for o in opts:
        k, _, v = o.partition("=")
        kv[k] = int(v) if k == "seed" else float(v)
    return base, kv


def needs_base_masks(method: str) -> bool:
    """Whether a stage needs the masks of the report's own Neural Gate run (its seed, its lr)."""
    base, kv = parse_variant(method)
    if "seed" in kv:  # a seed variant learns (neural_gate) or reuses (random_gate) that seed's own masks
        return False
    m = find_method(base)
    return m is not None and m.needs_masks


def stage_order(methods, seeds, base_seed: int, sweep_lrs, base_lr: float, reverse: bool = False,
                seed_controls=(RANDOM_CONTROL,)) -> list[str]:
    """The stages of a report in the order a worker computes them.

    Forward: the unedited model, then Neural Gate (the mask-based baselines and the lr variants reuse its
    masks), the other methods, the seed variants and the lr variants. Reverse (a second worker on the same
    workdir): from the other end, but the stages that need Neural Gate's masks come last, so the two workers
    do not both learn them while the first one is still at it.
    """
    order = [BASELINE] + [m for m in report_methods() if m in methods and m != BASELINE]
    if LEARNED in order:
        order.remove(LEARNED)
        order.insert(1, LEARNED)
    for sd in seeds:
        if sd != base_seed:
            order += [variant(LEARNED, sd)] + [variant(c, sd) for c in seed_controls]
    for lr in sweep_lrs:
        if lr != base_lr:
            order += [variant(LEARNED, lr=lr), variant(RANDOM_CONTROL, lr=lr)]
    if reverse:
        rest = order[:0:-1]
        order = order[:1] + [m for m in rest if not needs_base_masks(m)] + [m for m in rest if needs_base_masks(m)]
    return order


def train_subset(records: list, n: int, seed: int, base_seed: int, category: str) -> list:
    """The train images one seed edits on: the first ``n`` for the report's seed, a seeded sample otherwise
    (kept in dataset order), so that extra seeds measure the spread over data as well as over random gates."""
    if seed == base_seed or n >= len(records):
        return records[:n]
    idx = sorted(random.Random(f"ng-report/{seed}/{category}").sample(range(len(records)), n))
    return [records[i] for i in idx]
