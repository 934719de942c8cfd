"""How well a projector names the category of images it never trained on, and what the frozen features hold.

Why a module of its own: stage 3 of the training keeps the weights its validation check scores best, the
command line measures a saved projector on further validation images (``--validate``), and the
resolution/layer probe (``--probe``) chose the number of visual tokens; all three score outside the loop.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from ng_core.data import sample_image
from ng_core.data.images import derive_seed
from ng_core.models.image_processing import ImageConfig, preprocess
from ng_core.models.llava import LlavaAdapter
from ng_core.models.mini import assemble as ML
from ng_core.models.mini.onnx_dinov2 import dinov2_from_onnx
from ng_train.mini.eval_judges import names_category
from ng_train.mini.train_projector_config import TrainConfig
from ng_train.mini.train_recipe import (
    CATEGORY_ORDER,
    TYPE_QUESTION,
    log_line,
    val_seed,
)
from ng_train.mini.train_steps import vision_features


def type_accuracy(adapter, feats, categories: list, max_new_tokens: int, batch: int = 8) -> tuple[dict, dict]:
    """Share of greedy answers to the type question that name the image's category, per category, and up to
    five wrong answers per category. ``feats``: projected image features, one per entry of ``categories``."""
    texts = []
    for j in range(0, len(categories), batch):
        texts += [g.text for g in adapter.generate([(f, TYPE_QUESTION) for f in feats[j:j + batch]],
                                                   max_new_tokens=max_new_tokens)]
    per, wrong = {}, {}
    for c, a in zip(categories, texts):
        ok = names_category(a, c)
        per.setdefault(c, []).append(ok)
        if not ok and len(wrong.setdefault(c, [])) < 5:
            wrong[c].append(a)
    return {c: round(sum(v) / len(v), 3) for c, v in per.items()}, {c: wrong.get(c, []) for c in per}


class ValidationCheck:
    """Stage 3's check: type-question accuracy per category on the validation images (``val_seed(c, i)``,
    ``i < cfg.val_per_category``), with the projector as it is now; every check is kept in ``curve``."""

    def __init__(self, adapter, cfg: TrainConfig, log=log_line):
        self.adapter, self.cfg, self.log = adapter, cfg, log
        self.curve: list = []
        self._feats = None  # the validation images' vision features, computed at the first check
        self._cats: list = []

    def __call__(self, proj, step_label: str) -> tuple:
        """(worst category's accuracy, mean accuracy) of ``proj``, logged and appended to ``curve``."""
        cfg = self.cfg
        if self._feats is None:
            vimgs = []
            for c in CATEGORY_ORDER:
                for i in range(cfg.val_per_category):
                    vimgs.append(sample_image(c, val_seed(c, i)))
                    self._cats.append(c)
            self._feats = vision_features(self.adapter, vimgs, cfg.vision_feature_layer)
        tv = time.perf_counter()
        with torch.no_grad():
            acc, _ = type_accuracy(self.adapter, proj(self._feats), self._cats, cfg.val_max_new_tokens)
        score = (min(acc.values()), round(sum(acc.values()) / len(acc), 4))
        self.curve.append({"at": step_label, "min": score[0], "mean": score[1], "per_category": acc})
        self.log(f"validation {step_label}: min {score[0]:.2f} mean {score[1]:.3f} "
                 + " ".join(f"{c[:8]}={v:.2f}" for c, v in acc.items()) + f" ({time.perf_counter() - tv:.0f}s)")
        return score


def validate_projector(path: Path, first: int = 16, per_category: int = 40, cache_dir=None, threads: int = 1,
                       log=log_line) -> dict:
    """Type-question accuracy per category of a saved projector on validation images ``val_seed(c, first + i)``.

    Indices from ``val_per_category`` (16) on are never seen by training, not even by stage 3's checks: this is
    how two training variants are compared without touching the evaluation images.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    torch.set_num_threads(threads)
    adapter = LlavaAdapter.from_folder(ML.ensure_assembled(cache_dir, with_reader=False), model_id=ML.MODEL_ID)
    adapter.model.model.multi_modal_projector.load_state_dict(ML.load_projector_state(path), strict=True)
    rates, wrong = {}, {}
    for c in CATEGORY_ORDER:
        feats = [adapter.encode_image(sample_image(c, val_seed(c, first + i))) for i in range(per_category)]
        r, w = type_accuracy(adapter, feats, [c] * per_category, TrainConfig.val_max_new_tokens)
        rates[c], wrong[c] = r[c], w[c]
        log(f"{c}: {rates[c]:.3f}" + (f"  e.g. {wrong[c][:2]}" if wrong[c] else ""))
    return {"projector_sha256": ML.sha256_file(path), "val_seeds": f"val_seed(category, i), {first} <= i < "
            f"{first + per_category}", "rates": rates, "min": min(rates.values()),
            "mean": round(sum(rates.values()) / len(rates), 4), "wrong_examples": wrong}



def probe_resolutions(sizes=(84, 112, 140), layers=(-1, -4), n_train: int = 150, n_test: int = 30,
                      threads: int = 1, log=log_line) -> list[dict]:
    """How much category information the frozen vision features keep at each input size and layer.

    A linear classifier on mean-pooled DINOv2 tokens (standardised, 300 Adam steps), trained on ``n_train``
    and tested on ``n_test`` images per category (seeds ``derive_seed("probe", category, i)``). Used to
    choose the number of visual tokens; see the model card.
    """
    torch.set_num_threads(threads)
    vt = dinov2_from_onnx(ML.locate_source(ML.VISION_SOURCE))
    cats = list(CATEGORY_ORDER)
    n = n_train + n_test
    imgs = {c: [sample_image(c, derive_seed("probe", c, i)) for i in range(n)] for c in cats}
    rows = []
    for size in sizes:
        cfg = ImageConfig.from_dict(ML.preprocessor_config(size))
        t = time.perf_counter()
        pooled = {L: [] for L in layers}
        labels = []
        for ci, c in enumerate(cats):
            px = torch.cat([preprocess(im, cfg) for im in imgs[c]])
            with torch.no_grad():
                hs = vt(pixel_values=px, output_hidden_states=True).hidden_states
            for L in layers:
                pooled[L].append(hs[L][:, 1:].mean(1))
            labels += [ci] * n
        ms = (time.perf_counter() - t) / (n * len(cats)) * 1000
        y = torch.tensor(labels)
        train = (torch.arange(len(y)) % n) < n_train
        for L in layers:
            x = torch.cat(pooled[L])
            x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
            torch.manual_seed(0)
            w = torch.zeros(x.shape[1], len(cats), requires_grad=True)
            b = torch.zeros(len(cats), requires_grad=True)
            opt = torch.optim.Adam([w, b], lr=1e-2)
            for _ in range(300):
                loss = torch.nn.functional.cross_entropy(x[train] @ w + b, y[train]) + 1e-3 * (w ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            pred = (x[~train] @ w + b).argmax(1)
            per = {c: round(float((pred[y[~train] == k] == k).float().mean()), 3) for k, c in enumerate(cats)}
            row = {"image_size": size, "visual_tokens": (size // 14) ** 2, "layer": L,
                   "accuracy": round(float((pred == y[~train]).float().mean()), 3), "per_category": per,
                   "vision_ms_per_image": round(ms, 1)}
            rows.append(row)
            log(json.dumps(row))
    return rows
