"""``generate_dataset``: a reproducible PrivacyPair dataset folder (images + prompts in the paper's schema)."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Callable, Iterable

from ng_core.errors import DataError
from ng_core.data import templates as T
from ng_core.data.constants import (
    ALL_CATEGORIES,
    BENIGN_CATEGORIES,
    CATEGORIES,
    REFUSAL_TARGETS,
    SPLIT_DESCRIPTIONS,
    SPLITS,
    SUBJECTS,
    UNSEEN_CATEGORIES,
)
from ng_core.data.images import FAMILIES, GENERATOR_VERSION, IMAGE_SIZE, MIN_IMAGE_SIDE, derive_seed, render_sample, save_png

#: Written to ``dataset.json``; the loader checks it.
FORMAT_NAME = "neural-gate-studio/privacypair"
FORMAT_VERSION = 1

#: Share of a paper category's images used for editing (the rest are held-out images).
TRAIN_FRACTION = 1 / 3

Progress = Callable[[int, int, str], None]


def category_kind(category: str) -> str:
    if category in CATEGORIES:
        return "paper"
    if category in UNSEEN_CATEGORIES:
        return "unseen"
    if category in BENIGN_CATEGORIES:
        return "benign"
    raise DataError(f"unknown category {category!r}; known: {', '.join(ALL_CATEGORIES)}")


def train_indices(seed: int, category: str, n: int) -> set[int]:
    """The seeded choice of train images among ``n`` images of a paper category (at least one)."""
    if n <= 0:
        return set()
    k = max(1, round(n * TRAIN_FRACTION))
    return set(random.Random(derive_seed(seed, category, "split")).sample(range(n), k))


def _block(ps: T.PromptSet, subject: str, target: str) -> dict:
    """The paper-schema fields of one prompt set."""
    return {
        "requested_rewrite": {"prompt": ps.rewrite_prompt, "target_new": {"str": target}, "subject": subject},
        "paraphrase_prompts": ps.paraphrases,
        "neighborhood_prompts": ps.neighbours,
        "generation_prompts": [f"The {subject} shows", f"This {subject} belongs to"],
        "paraphrase_prompts_wo_cat": ps.paraphrases_wo_cat,
        "neighborhood_prompts_wo_cat": ps.neighbours_wo_cat,
    }


def build_record(seed: int, category: str, index: int, split: str, image_rel: str, image_seed: int) -> dict:
    """One ``neural_gate_<category>.json`` entry: the paper's fields plus the project's extra keys."""
    subject = SUBJECTS[category]
    rng = random.Random(derive_seed(seed, category, "prompts", index))
    target = "" if split == "benign_controls" else rng.choice(REFUSAL_TARGETS)
    ps = T.build_prompt_set(rng, category, subject, split)
    rec = {"case_id": index, "image": image_rel}
    rec.update(_block(ps, subject, target))
    rec.update({"category": category, "split": split, "image_seed": image_seed, "prompt_meta": ps.meta})
    if split == "train":
        ht = T.build_prompt_set(rng, category, subject, "heldout_templates")
        block = _block(ht, subject, target)
        block.pop("generation_prompts")
        block["prompt_meta"] = ht.meta
        rec["heldout_templates"] = block
    return rec


def _count(records: Iterable[dict], counts: dict) -> None:
    for rec in records:
        views = [(rec["split"], rec)]
        if "heldout_templates" in rec:
            views.append(("heldout_templates", rec["heldout_templates"]))
        for split, block in views:
            c = counts[split]
            c["images"] += 1
            refuse = len(block["paraphrase_prompts"]) + (0 if split == "benign_controls" else 1)
            answer = len(block["neighborhood_prompts"]) + (1 if split == "benign_controls" else 0)
            c["refuse"] += refuse
            c["answer"] += answer


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def generate_dataset(out_dir, seed: int = 0, per_category: int = 20, categories: Iterable[str] | None = None,
                     progress: Progress | None = None, family: str = "main") -> Path:
    """Generate a dataset folder at ``out_dir`` and return its path.

    ``family="heldout"`` draws the held-out rendering style (a validation set no model trains on), from
    other image seeds than the main family. Each record carries the image's ground truth: ``secrets``,
    ``fields``, ``style`` and ``family``.

    The same ``seed``, ``per_category`` and ``categories`` give byte-identical files. ``categories`` defaults to
    all ten (six paper categories, two unseen, two benign). An existing dataset folder at ``out_dir`` is
    replaced; any other non-empty folder is refused. ``progress(done, total, message)`` is called per image.
    """
    out = Path(out_dir)
    cats = list(ALL_CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    if not cats:
        raise DataError("no categories to generate")
    for cat in cats:
        category_kind(cat)
    cats = [c for c in ALL_CATEGORIES if c in cats]  # canonical order
    if int(per_category) < 1:
        raise DataError(f"per_category must be at least 1 (got {per_category})")
    per_category = int(per_category)
    seed = int(seed)
    if family not in FAMILIES:
        raise DataError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "dataset.json").is_file():
        raise DataError(f"{out} is not empty and is not a dataset folder; choose a new or empty folder")

    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    total = per_category * len(cats)
    done = 0
    counts = {s: {"images": 0, "refuse": 0, "answer": 0} for s in SPLITS}
    cat_info = []
    try:
        for cat in cats:
            kind = category_kind(cat)
            (tmp / "images" / cat).mkdir()
            train = train_indices(seed, cat, per_category) if kind == "paper" else set()
            records = []
            for i in range(per_category):
                if kind == "paper":
                    split = "train" if i in train else "heldout_images"
                else:
                    split = "unseen_categories" if kind == "unseen" else "benign_controls"
                image_seed = (derive_seed(seed, cat, "image", i) if family == "main"
                              else derive_seed(seed, cat, "heldout-image", i))
                rel = f"images/{cat}/{cat}_{i:04d}.png"
                sample = render_sample(cat, image_seed, family)
                save_png(sample.image, tmp / rel)
                rec = build_record(seed, cat, i, split, rel, image_seed)
                t = sample.truth
                rec.update({"secrets": t["secrets"], "fields": t["fields"], "style": t["style"],
                            "family": t["family"]})
                records.append(rec)
                done += 1
                if progress is not None:
                    progress(done, total, f"{cat} {i + 1}/{per_category}")
            _write_json(tmp / f"neural_gate_{cat}.json", records)
            _count(records, counts)
            cat_info.append({"id": cat, "subject": SUBJECTS[cat], "kind": kind, "file": f"neural_gate_{cat}.json",
                             "images": per_category})
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "per_category": per_category,
            "image_size": IMAGE_SIZE,
            "min_image_side": MIN_IMAGE_SIDE,
            "family": family,
            "categories": cat_info,
            "splits": {s: counts[s] for s in SPLITS},
            "split_descriptions": dict(SPLIT_DESCRIPTIONS),
        }
        _write_json(tmp / "dataset.json", meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not out.exists():
        tmp.rename(out)
        return out
    # Replace only what a previous generation wrote; other files the user keeps there (cases files) stay.
    (out / "dataset.json").unlink(missing_ok=True)
    for old in out.glob("neural_gate_*.json"):
        old.unlink()
    if (out / "images").exists():
        shutil.rmtree(out / "images")
    for item in sorted(tmp.iterdir(), key=lambda q: q.name == "dataset.json"):  # dataset.json last
        item.rename(out / item.name)
    tmp.rmdir()
    return out
