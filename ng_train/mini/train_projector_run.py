"""One run of the projector recipe, from the frozen base model to ``projector.safetensors`` and its records.

Why a module of its own: it puts the pieces in order (load, images and features, warm start, distillation
targets, the stages, the fold and the save) and writes what ``projector.json`` and ``training_log.json``
record; the pieces live in ``train_projector_data``, ``train_projector_stages`` and
``train_projector_validation``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from ng_core.models.image_processing import ImageConfig
from ng_core.models.llava import LlavaAdapter
from ng_core.models.mini import assemble as ML
from ng_train.mini.train_projector_config import TrainConfig
from ng_train.mini.train_projector_data import render_and_encode, training_seeds
from ng_train.mini.train_projector_stages import (
    Projector,
    StageRunner,
    warm_start,
)
from ng_train.mini.train_projector_validation import ValidationCheck
from ng_train.mini.train_recipe import (
    CATEGORY_ORDER,
    GENERAL_QUESTIONS_TRAIN,
    SEED_NAMESPACE,
    log_line,
)
from ng_train.mini.train_steps import general_answer_targets


def load_base_adapter(cfg: TrainConfig, cache_dir=None, log=log_line):
    """The base model (no reader stage) with every weight frozen, building images at ``cfg.image_size``."""
    if cfg.device != "cpu" and not torch.cuda.is_available():
        raise RuntimeError(f"device {cfg.device!r} asked for, but torch {torch.__version__} sees no CUDA device")
    log("assembling / loading the base model")
    folder = ML.ensure_assembled(cache_dir, with_reader=False)  # the projector is trained before the reader stage
    adapter = LlavaAdapter.from_folder(folder, model_id=ML.MODEL_ID,
                                       device_map=None if cfg.device == "cpu" else {"": cfg.device})
    # train at the configured resolution, whatever the cached folder was assembled with
    adapter.image_cfg = ImageConfig.from_dict(ML.preprocessor_config(cfg.image_size))
    n_img = ML.num_visual_tokens(cfg.image_size)
    if adapter.n_image_tokens != n_img:
        raise RuntimeError(f"adapter builds {adapter.n_image_tokens} image tokens, expected {n_img}")
    for p in adapter.model.parameters():
        p.requires_grad_(False)
    return adapter


def _earlier_run(init_from: Path) -> dict:
    """The training log beside a projector given with ``--init-from`` ({} when there is none)."""
    prev_log = init_from.parent / "training_log.json"
    return json.loads(prev_log.read_text()) if prev_log.is_file() else {}


def _continue_from(init_from: Path, start_stage: int, proj: Projector, stage1_log: dict, timings: dict,
                   log=log_line) -> tuple[list, str]:
    """Load the earlier stage's projector and take over its loss curve and timings; returns (curve, stage-1 sha)."""
    stage1_sha = ML.sha256_file(init_from)
    proj.load_folded_state(ML.load_projector_state(init_from))
    log(f"stages before stage {start_stage} skipped: continuing from {init_from} (sha256 {stage1_sha[:12]})")
    kept = ("stage1",) if start_stage == 2 else ("stage1", "stage2")
    prev_curve = [r for r in stage1_log.get("loss_curve", []) if r.get("stage", "stage1") in kept]
    for r in prev_curve:
        r.setdefault("stage", "stage1")
    prev_t = stage1_log.get("timings_s", {})
    timings["stage1_s"] = prev_t.get("stage1_s", prev_t.get("train_s", 0.0))
    if start_stage == 3:
        timings["stage2_s"] = prev_t.get("stage2_s", 0.0)
        prev_meta = init_from.parent / "projector.json"
        prev_meta = json.loads(prev_meta.read_text()) if prev_meta.is_file() else {}
        stage1_sha = stage1_log.get("stage1_sha256") or prev_meta.get("stages", {}).get("stage1", {}).get(
            "sha256", stage1_sha)
    return prev_curve, stage1_sha


def _stage1_sha(proj: Projector, out_dir: Path) -> str:
    """The hash the stage-1 projector file would have (what --init-from would be given)."""
    stage1_out = out_dir / ".stage1.tmp.safetensors"
    save_file(proj.folded_state(), str(stage1_out),
              metadata={"model_id": ML.MODEL_ID, "format": "LlavaMultiModalProjector"})
    sha = ML.sha256_file(stage1_out)
    stage1_out.unlink()
    return sha


def train(cfg: TrainConfig, out_dir: Path, cache_dir=None, log=log_line, init_from: Path | None = None,
          start_stage: int = 2) -> dict:
    """Run the recipe; with ``init_from`` (the projector of stage ``start_stage - 1``), skip the stages before
    ``start_stage``. Each stage draws from its own random stream, so the result equals the one-run recipe."""
    if start_stage not in (2, 3):
        raise ValueError(f"start_stage must be 2 or 3, not {start_stage}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = load_base_adapter(cfg, cache_dir, log)
    timings["load_s"] = time.perf_counter() - t0

    # 1. images and frozen features
    seeds = training_seeds(cfg)
    items, feats = render_and_encode(cfg, adapter, seeds, timings)
    n_base_items = cfg.n_train_per_category * len(CATEGORY_ORDER)
    log(f"rendered and encoded {len(items)} training images ({n_base_items} for stages 1-2): render "
        f"{timings['render_s']:.1f}s, vision features {tuple(feats.shape)} {timings['features_s']:.1f}s")
    flat = feats[:n_base_items].reshape(-1, feats.shape[-1])
    mean, std = flat.mean(0), flat.std(0).clamp_min(1e-3)
    del flat
    proj = Projector(mean, std, feats.shape[-1], adapter.hidden_size, cfg.seed)

    # 2. warm start: tokens of an image -> embedding of its category words
    stage1_log = _earlier_run(Path(init_from)) if init_from is not None else {}
    t = time.perf_counter()
    warm_curve = warm_start(cfg, adapter, proj, feats, items, n_base_items, log) if init_from is None else []
    timings["warm_start_s"] = time.perf_counter() - t
    if not warm_curve:
        warm_curve = stage1_log.get("warm_start_curve", [])
        timings["warm_start_s"] = stage1_log.get("timings_s", {}).get("warm_start_s", 0.0)

    # 3. distillation targets for unrelated questions: the LM's own text-only answers
    t = time.perf_counter()
    general_targets = general_answer_targets(adapter, GENERAL_QUESTIONS_TRAIN, cfg.general_answer_tokens)
    timings["general_targets_s"] = time.perf_counter() - t
    log(f"distillation targets for {len(general_targets)} general questions in {timings['general_targets_s']:.1f}s")

    # 4. LM-in-the-loop training, in stages (each with its own optimiser, schedule and mix)
    validation = ValidationCheck(adapter, cfg, log)
    runner = StageRunner(cfg, adapter, proj, items, feats, n_base_items, general_targets, validation, log)
    curve = []
    t = time.perf_counter()
    if init_from is None:
        curve += runner.run_stage("stage1", cfg.steps, cfg.lr, cfg.warmup_steps, cfg.mix, cfg.category_weights)
        timings["stage1_s"] = time.perf_counter() - t
        stage1_sha = _stage1_sha(proj, out_dir)
    else:
        init_from = Path(init_from)
        prev_curve, stage1_sha = _continue_from(init_from, start_stage, proj, stage1_log, timings, log)
        curve += prev_curve
    t2 = time.perf_counter()
    if cfg.stage2_steps > 0 and start_stage <= 2:
        curve += runner.run_stage("stage2", cfg.stage2_steps, cfg.stage2_lr, cfg.stage2_warmup_steps,
                                  cfg.stage2_mix, cfg.stage2_category_weights)
    if start_stage <= 2:
        timings["stage2_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    if cfg.stage3_steps > 0:
        curve += runner.run_stage("stage3", cfg.stage3_steps, cfg.stage3_lr, cfg.stage3_warmup_steps,
                                  cfg.stage3_mix, cfg.stage3_category_weights, ema_decay=cfg.stage3_ema,
                                  val_every=cfg.val_every)
    timings["stage3_s"] = time.perf_counter() - t3
    timings["train_s"] = timings.get("stage1_s", 0.0) + timings["stage2_s"] + timings["stage3_s"]

    # 5. save (standardisation folded into linear_1)
    proj_path, fold_err = save_projector(proj, feats, mean, std, out_dir)
    total_s = time.perf_counter() - t0
    if init_from is not None:  # the earlier runs' own time (warm start, skipped stages) counts too
        total_s += timings.get("stage1_s", 0.0) + timings.get("warm_start_s", 0.0)
        if start_stage == 3:
            total_s += timings.get("stage2_s", 0.0)
    timings["total_s"] = total_s
    meta = write_records(cfg, out_dir, proj_path, stage1_sha=stage1_sha, chosen=runner.chosen, init_from=init_from,
                         start_stage=start_stage, n_items=len(items), n_base_items=n_base_items,
                         n_all=len(seeds[CATEGORY_ORDER[0]]), curve=curve, fold_err=fold_err, timings=timings,
                         warm_curve=warm_curve, kind_counts=runner.kind_counts, val_curve=validation.curve,
                         general_texts={q: adapter.tokenizer.decode(v) for q, v in general_targets.items()})
    log(f"saved {proj_path} ({proj_path.stat().st_size / 1e6:.2f} MB, sha256 {meta['sha256'][:12]}), "
        f"total {total_s / 60:.1f} min")
    return meta


def save_projector(proj: Projector, feats, mean, std, out_dir: Path) -> tuple[Path, float]:
    """Write ``projector.safetensors`` with the standardisation folded into ``linear_1``, after checking the
    fold on real features; returns (path, the fold's max abs error)."""
    state = proj.folded_state()
    # check the fold on real features
    with torch.no_grad():
        lin1 = torch.nn.functional.linear(feats[:4], state["linear_1.weight"].to(feats.device),
                                          state["linear_1.bias"].to(feats.device))
        ref = proj.net[0]((feats[:4] - mean) / std)
        fold_err = float((lin1 - ref).abs().max())
    assert fold_err < 1e-3, fold_err
    proj_path = out_dir / "projector.safetensors"
    save_file(state, str(proj_path), metadata={"model_id": ML.MODEL_ID, "format": "LlavaMultiModalProjector"})
    return proj_path, fold_err


def write_records(cfg: TrainConfig, out_dir: Path, proj_path: Path, *, stage1_sha: str, chosen: dict,
                  init_from, start_stage: int, n_items: int, n_base_items: int, n_all: int, curve: list,
                  fold_err: float, timings: dict, warm_curve: list, kind_counts: dict, val_curve: list,
                  general_texts: dict) -> dict:
    """Write ``projector.json`` (what the model card and the assembly read) and ``training_log.json`` (the
    curves); returns the former's content."""
    digest = ML.sha256_file(proj_path)
    ema = None
    ema_curve = []
    for r in curve:
        ema = r["loss"] if ema is None else 0.9 * ema + 0.1 * r["loss"]
        ema_curve.append(ema)
    meta = {
        "model_id": ML.MODEL_ID,
        "file": proj_path.name,
        "sha256": digest,
        "bytes": proj_path.stat().st_size,
        "format": "stock LlavaMultiModalProjector state dict: linear_1 (384->576), GELU, linear_2 (576->576); "
        "input standardisation folded into linear_1",
        "image_size": cfg.image_size,
        "vision_feature_layer": cfg.vision_feature_layer,
        "projector_hidden_act": "gelu",
        "num_visual_tokens": ML.num_visual_tokens(cfg.image_size),
        "seed": cfg.seed,
        "steps": cfg.steps + cfg.stage2_steps + cfg.stage3_steps,
        "stages": {"stage1": {"steps": cfg.steps, "lr": cfg.lr, "sha256": stage1_sha},
                   "stage2": {"steps": cfg.stage2_steps, "lr": cfg.stage2_lr},
                   **({"stage3": {"steps": cfg.stage3_steps, "lr": cfg.stage3_lr, "ema": cfg.stage3_ema,
                                  "kept": chosen.get("stage3")}} if cfg.stage3_steps else {})},
        **({"init_from_sha256": ML.sha256_file(init_from)} if init_from is not None else {}),
        "stage1_run": ("same run" if init_from is None else
                       f"earlier run(s), continued with --init-from (from stage {start_stage})"),
        "batch_size": cfg.batch_size,
        "samples_seen": (cfg.steps + cfg.stage2_steps + cfg.stage3_steps) * cfg.batch_size,
        "train_images": n_items,
        "train_images_stages_1_2": n_base_items,
        "train_seed_rule": f"derive_seed('{SEED_NAMESPACE}', 'train', category, i), i < {n_all} "
                           f"(stages 1-2: i < {cfg.n_train_per_category})",
        "final_loss_ema": round(ema_curve[-1], 4),
        "first_loss": curve[0]["loss"],
        "fold_check_max_abs": fold_err,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "threads": cfg.threads,
        "versions": {"torch": torch.__version__, "transformers": ML.installed_version("transformers")},
        "sources": [s.requirement for s in ML.SOURCES],
        "config": dataclasses.asdict(cfg),
        "command": "python -m ng_train.mini.train_projector " + " ".join(sys.argv[1:]),
        "reproduce": "python -m ng_train.mini.train_projector  (warm start and every stage in one run)",
    }
    (out_dir / "projector.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out_dir / "training_log.json").write_text(json.dumps({
        "config": dataclasses.asdict(cfg),
        "warm_start_curve": warm_curve,
        "loss_curve": curve,
        "loss_curve_ema": [round(x, 4) for x in ema_curve],
        "kind_counts": kind_counts,
        "validation_curve": val_curve,
        "validation_seed_rule": f"derive_seed('{SEED_NAMESPACE}', 'val', category, i), i < {cfg.val_per_category}",
        "stage1_sha256": stage1_sha,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "general_targets": general_texts,
    }, indent=1) + "\n")
    return meta
