"""The projector stage's training images: drawn by the project's generator, encoded once by the frozen vision tower.

Why a module of its own: which images are drawn (seeds disjoint from validation and evaluation), in which
order, and how the drawing is spread over processes is data preparation, apart from the training loop. The
images depend on their seeds only, so the number of drawing processes changes nothing the training sees.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time

import torch

from ng_core.data import sample_image
from ng_train.mini.train_projector_config import TrainConfig
from ng_train.mini.train_recipe import (
    CATEGORY_ORDER,
    eval_seed,
    image_stats,
    train_seed,
    val_seed,
)
from ng_train.mini.train_steps import vision_features


def _draw(cat_seed: tuple) -> tuple:
    """One training image and its pixel statistics (a pure function of category and seed: any process may draw it)."""
    img = sample_image(*cat_seed)
    return img, image_stats(img)


def draw_all(pairs: list, pool=None) -> list:
    """``_draw`` for every (category, seed), in order; with a process ``pool`` the drawing is spread over it."""
    return pool.map(_draw, pairs, chunksize=8) if pool is not None else [_draw(cs) for cs in pairs]


def training_seeds(cfg: TrainConfig) -> dict:
    """Every training seed per category (stages 1-2 use the first ``n_train_per_category``), checked disjoint
    from the evaluation and validation seeds."""
    cats = list(CATEGORY_ORDER)
    n_all = max(cfg.n_train_per_category, cfg.stage3_n_train_per_category if cfg.stage3_steps else 0)
    train_seeds = {c: [train_seed(c, i) for i in range(n_all)] for c in cats}
    eval_set = {eval_seed(c, i) for c in cats for i in range(200)}
    assert not eval_set & {s for v in train_seeds.values() for s in v}, "train and eval seeds overlap"
    val_set = {val_seed(c, i) for c in cats for i in range(cfg.val_per_category)}
    assert not val_set & (eval_set | {s for v in train_seeds.values() for s in v}), "validation seeds overlap"
    return train_seeds


def render_and_encode(cfg: TrainConfig, adapter, train_seeds: dict, timings: dict) -> tuple:
    """Draw the training images and compute their frozen vision features.

    Returns ``(items, feats)``: ``items`` are (category, seed, stats), stages 1-2's images first, then stage 3's
    extra ones; ``feats`` their features in the same order. Adds ``render_s`` and ``features_s`` to ``timings``.
    """
    cats = list(CATEGORY_ORDER)
    n_all = len(train_seeds[cats[0]]) if cats else 0
    items = []  # (category, seed, stats): stages 1-2's images first, then stage 3's extra ones
    feat_parts = []
    timings["render_s"] = timings["features_s"] = 0.0
    n_base = cfg.n_train_per_category
    # render and encode in chunks (the extra images would not fit in memory as pictures)
    base = [(c, s) for c in cats for s in train_seeds[c][:n_base]]
    # pieces of 2,000 (a multiple of the 16-image vision batch, so the features are those of one long list)
    chunks = [base[a:a + 2000] for a in range(0, len(base), 2000)]
    chunks += [[(c, s) for s in train_seeds[c][a:a + 200]] for c in cats for a in range(n_base, n_all, 200)]
    with contextlib.ExitStack() as stack:  # the workers end with the loop, also on an exception
        pool = None
        if cfg.render_workers > 1:
            pool = stack.enter_context(mp.get_context("fork").Pool(cfg.render_workers))
        for chunk in chunks:
            tr = time.perf_counter()
            drawn = draw_all(chunk, pool)
            images = [img for img, _ in drawn]
            items += [(c, s, st) for (c, s), (_, st) in zip(chunk, drawn)]
            del drawn
            timings["render_s"] += time.perf_counter() - tr
            tf = time.perf_counter()
            feat_parts.append(vision_features(adapter, images, cfg.vision_feature_layer))
            timings["features_s"] += time.perf_counter() - tf
            del images
    feats = torch.cat(feat_parts) if len(feat_parts) > 1 else feat_parts[0]
    return items, feats
