"""Train the projector of ``ng-mini-llava`` (vision tower and language model frozen).

    python -m ng_train.mini.train_projector [--steps N] [--seed S] [--out assets/ng-mini-llava]
        [--device cuda --render-workers 6]   # the same recipe on a GPU: minutes instead of an hour
        [--set FIELD=JSON ...]              # any TrainConfig field, recorded with the rest of the config

What it does, LLaVA-style, on images drawn by the project's generator (``ng_core.data.sample_image``):

1. renders ``n_train_per_category`` images per category (seeds ``derive_seed("ng-mini-llava", "train", cat, i)``,
   disjoint from the evaluation images, which are the default dataset's seeds) and computes their DINOv2
   features once (the vision tower is frozen, so this is exact);
2. warm start (no language model): the projector maps each image's tokens near the word embeddings of its
   category name, which gives the frozen LM a readable signal from the first step;
3. trains on a mixture of turns, loss on answer tokens only: captions and "what type of document" questions,
   colour/layout/appearance questions answered from the image's pixels, privacy questions answered with
   fake but plausible content (so that the unedited model answers them: the behaviour Neural Gate edits),
   and unrelated questions whose targets are the LM's own text-only answers (so the image does not derail
   what the LM already knows);
   Stage 2 continues with a fresh optimiser, a lower lr and more turns for the look-alike categories; stage 3
   (when ``stage3_steps`` > 0) runs at a lower lr still, keeps a moving average of the weights, checks it on
   validation images (``val_seed``: neither training nor evaluation images) every ``val_every`` steps and keeps
   the best checked weights (worst-category type accuracy first, then the mean);
4. folds the input standardisation into ``linear_1`` (a stock ``LlavaMultiModalProjector`` loads it) and writes
   ``projector.safetensors``, ``projector.json`` (sha256, config, seed, steps, timings) and ``training_log.json``
   (config and loss curve) into ``assets/ng-mini-llava/``.

Seeded and deterministic on a given machine, device and thread count (a GPU's arithmetic differs from a CPU's, so
the two give different weights from the same seed; the images and their order do not depend on either). Sequences
are built with the same adapter code that serves the model at inference (``LlavaAdapter.build``), so training and
inference prompts match.

This module is the command line. The recipe's pieces: ``train_recipe`` (texts, seeds and pixel answers shared
with the reader stage and the evaluations), ``train_projector_config`` (``TrainConfig``), ``train_projector_data``
(images and features), ``train_projector_turns`` (what is asked and answered), ``train_projector_stages`` (warm
start and stages), ``train_projector_validation`` (stage 3's check, ``--validate``, ``--probe``) and
``train_projector_run`` (one run, end to end). Their ``train_`` prefix marks them as leaves, like this script:
nothing in the library imports them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ng_core.models.mini import assemble as ML
from ng_train.mini.train_projector_config import TrainConfig
from ng_train.mini.train_projector_run import train
from ng_train.mini.train_projector_validation import (
    probe_resolutions,
    validate_projector,
)
from ng_train.mini.train_recipe import log_line

__all__ = ["TrainConfig", "main", "train"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ng_train.mini.train_projector", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ML.ASSETS_DIR), help="folder for projector.safetensors/json")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=None, help="training images per category")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--layer", type=int, default=None, help="vision feature layer")
    parser.add_argument("--no-refresh", action="store_true", help="do not reassemble the cached model afterwards")
    parser.add_argument("--init-from", default=None,
                        help="a stage-1 projector.safetensors (its training_log.json beside it is merged): "
                        "skip the warm start and stage 1 and run stage 2 only")
    parser.add_argument("--start-stage", type=int, default=2, choices=(2, 3),
                        help="with --init-from: the stage to start at (the projector given is the previous stage's)")
    parser.add_argument("--stage2-steps", type=int, default=None)
    parser.add_argument("--stage3-steps", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu (default) or cuda: the same recipe on a GPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default 1)")
    parser.add_argument("--render-workers", type=int, default=None,
                        help="processes drawing the training images (default 1; the images do not depend on it)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="override any TrainConfig field, e.g. --set batch_size=16 --set stage3_lr=3e-4 "
                        "(recorded in projector.json with the rest of the config)")
    parser.add_argument("--probe", action="store_true",
                        help="only run the resolution/layer probe (writes probe.json into --out) and exit")
    parser.add_argument("--validate", default=None, metavar="PROJECTOR",
                        help="only measure a saved projector's type accuracy on validation images never used in "
                        "training (compare training variants without the evaluation images) and print JSON")
    parser.add_argument("--validate-per-category", type=int, default=40)
    return parser


def config_from_args(args, parser: argparse.ArgumentParser) -> TrainConfig:
    """The TrainConfig the options ask for (``--set`` last); a bad ``--set`` stops with the parser's error."""
    cfg = TrainConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    if args.seed is not None:
        cfg.seed = args.seed
    if args.n_train is not None:
        cfg.n_train_per_category = args.n_train
    if args.image_size is not None:
        cfg.image_size = args.image_size
    if args.layer is not None:
        cfg.vision_feature_layer = args.layer
    if args.stage2_steps is not None:
        cfg.stage2_steps = args.stage2_steps
    if args.stage3_steps is not None:
        cfg.stage3_steps = args.stage3_steps
    for name, value in (("device", args.device), ("threads", args.threads), ("render_workers", args.render_workers)):
        if value is not None:
            setattr(cfg, name, value)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set:
        key, eq, raw = item.partition("=")
        if not eq or key not in fields:
            parser.error(f"--set {item!r}: expected FIELD=JSON with FIELD one of: {', '.join(sorted(fields))}")
        try:
            setattr(cfg, key, json.loads(raw))
        except ValueError:
            parser.error(f"--set {item!r}: {raw!r} is not a JSON value (strings need quotes: {key}='\"...\"')")
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.validate:
        if not Path(args.validate).is_file():
            parser.error(f"--validate: no projector file at {args.validate}")
        res = validate_projector(Path(args.validate), per_category=args.validate_per_category,
                                 cache_dir=args.cache_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps(res, indent=1))  # stdout holds the JSON only
        return 0
    if args.probe:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        rows = probe_resolutions()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.json").write_text(json.dumps(rows, indent=1) + "\n")
        return 0
    cfg = config_from_args(args, parser)
    if args.start_stage != 2 and args.init_from is None:
        parser.error("--start-stage needs --init-from (the previous stage's projector)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train(cfg, Path(args.out), cache_dir=args.cache_dir, init_from=args.init_from, start_stage=args.start_stage)
    if not args.no_refresh and Path(args.out).resolve() == ML.ASSETS_DIR.resolve():
        log_line("refreshing the assembled model with the new projector")
        ML.ensure_assembled(args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())