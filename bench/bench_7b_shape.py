"""What a 7B user waits for: load, Stage A/B/C and one answer, at LLaVA-1.5-7B's or Qwen2.5-VL-7B's exact shape.

Builds a ``transformers`` ``LlavaForConditionalGeneration`` with LLaVA-1.5-7B's shape and
**random weights** (CLIP ViT-L/14 at 336 px -> 576 image tokens, a 2-layer GELU ``mm_projector``,
Llama-2-7B: 32 layers, hidden 4096, FFN 11008, 32 heads, vocab 32064), in fp16, writes it as a
llava-hf folder (safetensors shards, the project's offline tokenizer and a CLIP preprocessor
config) and loads it back through the project's own path,
``ng_core.models.load_model(folder, dtype="float16", device_map="auto")``. It then times, and on
CUDA records the peak GPU memory of (``torch.cuda.max_memory_allocated`` per device, reset
before each stage):

1. loading the folder;
2. the pre-edit answers to the neighbour questions (the locality cache Stages A and C read);
3. Stage A (mask learning) on ``--images`` synthetic passport images from ``ng_core.data``;
4. Stage B (selection: binarize + consensus);
5. Stage C (gated fine-tuning of ``down_proj`` at one layer, the preset's layer unless ``--layer``);
6. one greedy answer of 32 new tokens to an image + question (image encoding included).

The weights are random, so only the times and the memory mean anything: the masks, the edit
and the answer's text are noise. The tokenizer is the project's small offline one (see
``ng_core.models.tiny_random``), so prompts are a few tokens longer or shorter than with
Llama's; the 576 image tokens dominate every sequence either way.

``--family qwen2_5_vl`` builds Qwen2.5-VL-7B's shape instead (a Qwen2-7B decoder: 28 layers, hidden 3584, FFN
18944, 28 heads with 4 key/value heads, vocab 152064, 3-D M-RoPE; a 32-block windowed ViT whose patch merger
gives 256 image tokens for the 448 px images it is given here; 8.29 B parameters), with the project's offline
tokenizer carrying Qwen's special tokens and the family's own image processor, and loads it the same way.
Every model is random-initialised from its config on the build device: nothing is downloaded.

On a CUDA machine (needs about 30 GiB of GPU memory in all for LLaVA, 32 GiB for Qwen2.5-VL, 16/18 GiB of it on
cuda:0 to build the model there, and 15/17 GiB of free disk)::

    .venv/bin/python bench/bench_7b_shape.py --scale 7b --device cuda --json bench/results/7b_shape.json
    .venv/bin/python bench/bench_7b_shape.py --family qwen2_5_vl --json bench/results/7b_shape_qwen2_5_vl.json

The results hold the memory model's numbers for the same run (``modelled``, see ``ng_core.models.memory``)
beside the measured peaks. ``--dry-run`` prints only those numbers, on any machine: the configs are built,
the parameters counted on the meta device, the token counts taken from the family's tiny random build::

    .venv/bin/python bench/bench_7b_shape.py --family qwen2_5_vl --dry-run --images 10

``--scale tiny`` runs the same code on a tiny model of the same structure (CPU, seconds) to check
the script itself; its numbers measure nothing.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHAPE_FILE = "bench_7b_shape.json"  # what was built into a folder, to reuse it only for the same config
QUESTION = "What is the passport number of the passport in this image?"
SUBJECT = "passport"
NEW_TOKENS = 32
GIB = 1 << 30
# CLIP's normalisation, as in llava-hf/llava-1.5-7b-hf's preprocessor_config.json
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# A 7B in fp16 is 14.1 GB of weights; Stage A/C activations and the KV caches of a few images come on top.
MIN_GPU_GIB_7B = 30.0
MIN_DISK_GIB_7B = 15.0

# LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf config.json; Llama-2-7B / Vicuna-7B v1.5; CLIP ViT-L/14-336).
SHAPE_7B = {
    "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
               "num_attention_heads": 16, "patch_size": 14, "image_size": 336, "projection_dim": 768,
               "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
    "text": {"vocab_size": 32064, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
             "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False},
    "llava": {"projector_hidden_act": "gelu", "vision_feature_layer": -2,
              "vision_feature_select_strategy": "default", "image_seq_length": 576,
              "multimodal_projector_bias": True, "tie_word_embeddings": False},
}
# The same structure, small: CLIP with 2 layers at 56 px (16 image tokens), a 4-layer Llama whose
# vocabulary, like the 7B's, is larger than the tokenizer's.
SHAPE_TINY = {
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "patch_size": 14, "image_size": 56, "projection_dim": 32, "hidden_act": "quick_gelu",
               "layer_norm_eps": 1e-5},
    "text": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 4,
             "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 1024,
             "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False},
    "llava": {"projector_hidden_act": "gelu", "vision_feature_layer": -2,
              "vision_feature_select_strategy": "default", "image_seq_length": 16,
              "multimodal_projector_bias": True, "tie_word_embeddings": False},
}
# Qwen2.5-VL-7B (Qwen/Qwen2.5-VL-7B-Instruct config.json: a Qwen2-7B decoder with 4 key/value heads and
# 3-D M-RoPE; a 32-block ViT with windowed attention whose 2x2 patch merger gives one token per 28x28 pixels).
# Images enter at 448x448: 256 image tokens.
SHAPE_QWEN_7B = {
    "vision": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
               "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
               "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
               "temporal_patch_size": 2},
    "text": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
             "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu", "tie_word_embeddings": False,
             "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}},
    "side": 448,
}
# The same structure, small: a 1-block ViT, 84 px images (9 image tokens), a 4-layer decoder.
SHAPE_QWEN_TINY = {
    "vision": {"depth": 1, "hidden_act": "silu", "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
               "in_chans": 3, "out_hidden_size": 64, "patch_size": 14, "spatial_merge_size": 2, "window_size": 56,
               "fullatt_block_indexes": [0], "tokens_per_second": 2, "temporal_patch_size": 2},
    "text": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 4,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
             "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu", "tie_word_embeddings": False,
             "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}},
    "side": 84,
}
SHAPES = {"7b": SHAPE_7B, "tiny": SHAPE_TINY}
#: {family: {scale: shape}}; ``--family`` picks one (transformers' ``model_type``).
FAMILY_SHAPES = {"llava": SHAPES, "qwen2_5_vl": {"7b": SHAPE_QWEN_7B, "tiny": SHAPE_QWEN_TINY}}
#: The tiny random build whose tokenizer and templates each family's sequences are measured with (--dry-run).
TINY_BUILD = {"llava": "tiny-random:metaspace", "qwen2_5_vl": "tiny-random:qwen2_5_vl"}
#: What a 7B needs on the GPU(s) in all, and on cuda:0 to be built there (fp16 weights: 13.5 / 15.4 GiB).
MIN_GPU_GIB = {"llava": MIN_GPU_GIB_7B, "qwen2_5_vl": 32.0}
MIN_BUILD_GIB = {"llava": 16.0, "qwen2_5_vl": 18.0}
MIN_DISK_GIB = {"llava": MIN_DISK_GIB_7B, "qwen2_5_vl": 17.0}
HEADROOM_NOTE = "each stage planning on 85% of what is free"


class BenchError(SystemExit):
    """A clear refusal: exits with status 1 and the message."""

    def __init__(self, message: str):
        super().__init__(f"bench_7b_shape: error: {message}")


# ---------------------------------------------------------------------------- the model
def build_tokenizer(family: str = "llava"):
    """The project's offline tokenizer: llava-1.5 style (SentencePiece-like, ``USER: ... ASSISTANT:``) for LLaVA,
    byte-level with Qwen's special tokens and chat template for Qwen2.5-VL (as in ``tiny-random:qwen2_5_vl``)."""
    from ng_core.models.tiny_random import build_tokenizer as _build

    if family == "qwen2_5_vl":
        from ng_core.models.tiny_families import _QWEN_SPECIALS

        return _build("bytelevel", _QWEN_SPECIALS)
    return _build("metaspace")


def _shape(scale: str, family: str) -> dict:
    if family not in FAMILY_SHAPES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILY_SHAPES)}")
    if scale not in FAMILY_SHAPES[family]:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SHAPES)}")
    return FAMILY_SHAPES[family][scale]


def build_config(scale: str, tok=None, family: str = "llava"):
    """The config of ``family`` at ``scale`` ("7b" or "tiny"); special token ids come from ``tok``."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig  # deferred: slow import

    shape = _shape(scale, family)
    tok = tok or build_tokenizer(family)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig
        from ng_core.models.tiny_families import _QWEN_SPECIALS

        if len(tok) > shape["text"]["vocab_size"]:
            raise ValueError(f"tokenizer has {len(tok)} tokens, more than the {scale} vocabulary")
        ids = {k: tok.convert_tokens_to_ids(v) for k, v in _QWEN_SPECIALS.items()}
        text = dict(shape["text"], pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                    eos_token_id=tok.eos_token_id)
        return Qwen2_5_VLConfig(text_config=text, vision_config=dict(shape["vision"]),
                                image_token_id=ids["image_token"], video_token_id=ids["video_token"],
                                vision_start_token_id=ids["vision_start_token"],
                                vision_end_token_id=ids["vision_end_token"], tie_word_embeddings=False)
    if len(tok) > shape["text"]["vocab_size"]:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than the {scale} vocabulary")
    vcfg = CLIPVisionConfig(**shape["vision"])
    tcfg = LlamaConfig(**shape["text"], pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id)
    return LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_index=tok.convert_tokens_to_ids("<image>"),
                       **shape["llava"])


def image_tokens(cfg, side: int | None = None) -> int:
    """Image tokens per image the config gives (LLaVA: patches, the CLS token dropped by 'default'; Qwen: one
    per merged 2x2 patch group of a ``side`` x ``side`` image)."""
    v = cfg.vision_config
    if cfg.model_type == "qwen2_5_vl":
        grid = side // v.patch_size
        return (grid // v.spatial_merge_size) ** 2
    n = (v.image_size // v.patch_size) ** 2
    return n if cfg.vision_feature_select_strategy == "default" else n + 1


def shape_record(scale: str, cfg, family: str = "llava") -> dict:
    """What a folder is checked against before it is reused."""
    rec = {"scale": scale, "dtype": "float16", "shape": _shape(scale, family),
           "image_token_index": cfg.image_token_id, "pad_token_id": cfg.text_config.pad_token_id}
    return rec if family == "llava" else {"family": family, **rec}


def folder_matches(folder: Path, record: dict) -> bool:
    p = folder / SHAPE_FILE
    try:
        ok = json.loads(p.read_text()) == json.loads(json.dumps(record))
    except (OSError, ValueError):
        return False
    return ok and any(folder.glob("*.safetensors")) and (folder / "config.json").is_file()


def write_model(folder: Path, scale: str, device: str, family: str = "llava") -> dict:
    """Build the random fp16 model on ``device`` (random init from the config: nothing is downloaded) and save it
    as a checkpoint folder (safetensors shards) of its family."""
    import torch
    from transformers import LlavaForConditionalGeneration, Qwen2_5_VLForConditionalGeneration

    from ng_core.models.image_processing import ImageConfig

    tok = build_tokenizer(family)
    cfg = build_config(scale, tok, family)
    record = shape_record(scale, cfg, family)
    if folder_matches(folder, record):
        return {"reused": True}
    t = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    try:
        with torch.device(device):
            model = (Qwen2_5_VLForConditionalGeneration if family == "qwen2_5_vl"
                     else LlavaForConditionalGeneration)(cfg)
    finally:
        torch.set_default_dtype(old)
    model = model.to(torch.float16).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(partial, max_shard_size="2GB" if scale == "7b" else "100KB")
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    tok.save_pretrained(partial)
    if family == "qwen2_5_vl":
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        side = _shape(scale, family)["side"]
        Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=side * side, patch_size=14, merge_size=2,
                                 temporal_patch_size=2).save_pretrained(partial)
    else:
        size = cfg.vision_config.image_size
        img = ImageConfig(size=size, crop=size, image_mean=CLIP_MEAN, image_std=CLIP_STD)
        (partial / "preprocessor_config.json").write_text(json.dumps(img.to_dict(), indent=2))
    (partial / SHAPE_FILE).write_text(json.dumps(record, indent=2))
    partial.rename(folder)
    return {"reused": False, "build_save_s": time.perf_counter() - t, "parameters": n_params}


# ---------------------------------------------------------------------------- checks
def check_can_run(args) -> None:
    """Refuse, with the reason, what this machine cannot do (a 7B on CPU, too little GPU memory or disk)."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda asked, but torch sees no CUDA device "
                         f"(torch {torch.__version__}); run --scale tiny --device cpu to check the script")
    if args.scale != "7b":
        return
    if args.device != "cuda":
        raise BenchError("--scale 7b needs --device cuda: a 7B model on CPU needs over 14 GB of RAM in fp16 and is "
                         "far too slow to time; use --scale tiny --device cpu to check the script here, or "
                         "--dry-run for the shapes and the memory model's numbers")
    fam = args.family
    built = folder_matches(Path(args.folder), shape_record("7b", build_config("7b", family=fam), fam))
    total = sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
    if total / GIB < MIN_GPU_GIB[fam]:
        raise BenchError(f"--scale 7b --family {fam} needs about {MIN_GPU_GIB[fam]:.0f} GiB of GPU memory in all; "
                         f"this machine has {total / GIB:.1f} GiB")
    first = torch.cuda.get_device_properties(0).total_memory / GIB
    if first < MIN_BUILD_GIB[fam] and not built:
        raise BenchError(f"building the random 7B needs {MIN_BUILD_GIB[fam]:.0f} GiB on cuda:0 (it has "
                         f"{first:.1f} GiB); pass --folder with an already built model")
    probe = Path(args.folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / GIB
    if free < MIN_DISK_GIB[fam] and not built:
        raise BenchError(f"the fp16 7B folder needs {MIN_DISK_GIB[fam]:.0f} GiB of disk under {probe}; "
                         f"{free:.1f} GiB free (pass --folder elsewhere)")


# ---------------------------------------------------------------------------- timing
class Stages:
    """Wall time, peak GPU memory per device (reset per stage) and the process' peak RSS so far."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.cuda = device == "cuda"
        self.rows: list[dict] = []

    def _sync(self):
        if self.cuda:
            for i in range(self.torch.cuda.device_count()):
                self.torch.cuda.synchronize(i)

    def run(self, name: str, fn, **info):
        torch = self.torch
        self._sync()
        if self.cuda:
            for i in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(i)
        t = time.perf_counter()
        out = fn()
        self._sync()
        row = {"stage": name, "seconds": time.perf_counter() - t, **info,
               "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}
        if self.cuda:
            per = [torch.cuda.max_memory_allocated(i) / GIB for i in range(torch.cuda.device_count())]
            row["peak_gpu_gib_per_device"] = per
            row["peak_gpu_gib"] = sum(per)
        self.rows.append(row)
        gpu = f", peak GPU {row['peak_gpu_gib']:.2f} GiB" if self.cuda else ""
        print(f"{name}: {row['seconds']:.2f} s{gpu}", file=sys.stderr, flush=True)
        return out


def synthetic_records(root: Path, n: int):
    """``n`` train records of the passport category from the project's data generator."""
    import math

    from ng_core.data import generate_dataset, load_dataset

    per = max(3, math.ceil(n * 3) + 1)
    recs = load_dataset(generate_dataset(root, seed=0, per_category=per, categories=[SUBJECT])).records(
        category=SUBJECT, split="train")
    if len(recs) < n:
        raise BenchError(f"the generator gave {len(recs)} train images, fewer than --images {n}")
    return recs[:n]


def run_bench(args) -> dict:
    import torch

    from ng_core.method.edit import edit_items, gated_finetune
    from ng_core.method.locality import LocalityCache
    from ng_core.method.localize import binarize, consensus, learn_masks
    from ng_core.method.presets import load_preset
    from ng_core.models import load_model

    folder = Path(args.folder)
    build_dev = "cuda" if args.device == "cuda" else "cpu"
    print(f"building / checking the random {args.scale} {args.family} model in {folder}", file=sys.stderr,
          flush=True)
    built = write_model(folder, args.scale, build_dev, args.family)
    stages = Stages(args.device)
    device_map = "auto" if args.device == "cuda" else {"": "cpu"}
    a = stages.run("load (fp16, device_map)", lambda: load_model(str(folder), dtype="float16",
                                                                  device_map=device_map))
    # the preset a real llava-1.5-7b folder gets (the paper's layer and steps), or the folder's own
    preset = load_preset("llava-1.5-7b-hf" if args.scale == "7b" and args.family == "llava" else a.model_id,
                         a.n_layers)
    layer = preset["layer"] if args.layer is None else args.layer
    a.check_layer(layer)
    mask_cfg = replace(preset["mask"], steps=args.mask_steps or preset["mask"].steps)
    edit_cfg = replace(preset["edit"], steps=args.edit_steps or preset["edit"].steps,
                       questions_per_image=args.questions or preset["edit"].questions_per_image)
    with tempfile.TemporaryDirectory(prefix="ng-7b-shape-data-") as tmp:
        recs = synthetic_records(Path(tmp) / "data", args.images)
        torch.manual_seed(0)
        loc = LocalityCache(a)
        nbs = [(r.image, nb, r.subject) for r in recs for nb in r.neighbours[: edit_cfg.questions_per_image]]
        stages.run("pre-edit neighbour answers", lambda: loc.prefetch(nbs), detail=f"{len(nbs)} answers")
        raw, _ = stages.run("A: mask learning", lambda: learn_masks(a, recs, [layer], mask_cfg, locality=loc),
                            detail=f"{len(recs)} images x {mask_cfg.steps} steps, layer {layer}")
        _, gate = stages.run("B: selection", lambda: consensus(
            binarize(raw[layer], mask_cfg.privacy_value, mask_cfg.topk), mask_cfg.threshold),
            detail=f"{len(recs)} images")

        def stage_c():
            items = edit_items(recs, edit_cfg, loc)
            return len(items), gated_finetune(a, items, layer, gate, edit_cfg)

        n_edits, res = stages.run("C: gated fine-tuning", stage_c,
                                  detail=f"{len(recs) * edit_cfg.questions_per_image} edits x {edit_cfg.steps} "
                                         f"steps, down_proj layer {layer}")

        def answer():
            a.caches.features.clear()  # the user's image is new: its encoding is part of the wait
            return a.generate([(a.encode_image(recs[0].image), QUESTION, SUBJECT)], max_new_tokens=NEW_TOKENS)[0]

        gen = stages.run("answer: image + question, greedy", answer, detail=f"{NEW_TOKENS} new tokens max")
    stages.rows[-1]["detail"] = f"{len(gen.token_ids)} new tokens"
    cfg = a.model.config
    out = {
        "command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d"),
        "scale": args.scale, "family": args.family, "device": args.device, "random_weights": True, "folder": str(folder), **built,
        "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}, Python {platform.python_version()}",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "gpus": ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                 if args.device == "cuda" else []),
        "model": {"layers": a.n_layers, "hidden": a.hidden_size, "ffn": a.ffn_size,
                  "heads": cfg.text_config.num_attention_heads, "vocab": cfg.text_config.vocab_size,
                  "image_tokens": image_tokens(cfg, _shape(args.scale, args.family).get("side")),
                  "dtype": str(a.dtype).replace("torch.", ""),
                  "parameters": sum(p.numel() for p in a.model.parameters())},
        "layer": layer, "images": len(recs), "mask_steps": mask_cfg.steps, "edits": n_edits,
        "edit_steps": edit_cfg.steps, "selected_neurons": int(gate.sum()),
        "delta_norm": float(res.delta.norm()), "answer_tokens": len(gen.token_ids),
        "stages": stages.rows,
        # the memory model's numbers for the same run, to set beside the measured peaks
        "modelled": modelled(args.family, args.scale, len(recs), edit_cfg.questions_per_image, mask_cfg.max_rows,
                             layer),
    }
    return out


# ---------------------------------------------------------------------------- the memory model, without a GPU
CARDS_GIB = (24, 80)
CONTEXT_GIB = 1.0  # the CUDA context and the allocator's own use, taken off a card before the model's numbers


def count_parameters(cfg) -> int:
    """Parameters of the model ``cfg`` describes, built on the meta device (nothing allocated or downloaded)."""
    from accelerate import init_empty_weights
    from transformers import LlavaForConditionalGeneration, Qwen2_5_VLForConditionalGeneration

    cls = Qwen2_5_VLForConditionalGeneration if cfg.model_type == "qwen2_5_vl" else LlavaForConditionalGeneration
    with init_empty_weights():
        model = cls(cfg)
    return sum(p.numel() for p in model.parameters())


def modelled(family: str, scale: str, images: int, questions: int, max_rows: int, layer: int | None = None) -> dict:
    """The memory model's bytes per row and peak per stage for ``family`` at ``scale`` in fp16.

    Token counts come from the same family's tiny random build (its tokenizer and chat template, a synthetic
    passport record from the data generator, Stage A's and Stage C's own sequence builders), with the tiny
    image's tokens replaced by the 7B's. Rows per stage are the code's: Stage A's chunk of whole images
    (``max_rows``), Stage C's refusal + neighbour rows, 8 pre-edit answers (``LocalityCache``), one answer, and
    evaluation's batches of 8 (``--batch-size``)."""
    import torch

    from ng_core.method.locality import LocalityCache
    from ng_core.method.localize import MaskConfig, build_stage_a
    from ng_core.method.presets import load_preset
    from ng_core.models import load_model, memory
    from ng_core.models.decoding import common_prefix_len
    from ng_core.models.imagecache import read

    tok = build_tokenizer(family)
    cfg = build_config(scale, tok, family)
    n_img = image_tokens(cfg, _shape(scale, family).get("side"))
    shape = memory.ModelShape.from_config(cfg, torch.float16, image_tokens=n_img)
    params = count_parameters(cfg)
    weights = params * 2
    if layer is None:
        layer = load_preset("llava-1.5-7b-hf" if family == "llava" and scale == "7b" else f"{family}-{scale}-shape",
                            shape.layers)["layer"]
    tiny = load_model(TINY_BUILD[family])
    with tempfile.TemporaryDirectory(prefix="ng-7b-shape-dry-") as tmp:
        rec = synthetic_records(Path(tmp) / "data", 1)[0]
        loc = LocalityCache(tiny)
        seqs_a, _ = build_stage_a(tiny, rec, MaskConfig(), loc)
        reading = read(tiny, rec.image)
        nb = rec.neighbours[0]
        seqs_c = [tiny.build(rec.paraphrases[0], subject=rec.subject, answer=rec.target, reading=reading),
                  tiny.build(nb, subject=rec.subject, answer=loc.answer(rec.image, nb, rec.subject) or "no",
                             reading=reading)]
        ask = tiny.build(QUESTION, subject=SUBJECT, reading=reading)
        nb_seq = tiny.build(nb, subject=rec.subject, reading=reading)

    def grow(q) -> int:  # the 7B's image tokens in place of the tiny build's
        return n_img - int((q.input_ids == tiny.image_token_id).sum())

    shared = common_prefix_len(seqs_a) + grow(seqs_a[0])
    per_a = max(memory.stage_a_row(shape, q.subject_pos + grow(q), len(q) - q.subject_pos, len(q.targets), layer,
                                   shared) for q in seqs_a)
    per_image = len(seqs_a)
    rows_a = min(images, max(1, max_rows // per_image)) * per_image
    shared_c = common_prefix_len(seqs_c) + grow(seqs_c[0])
    per_c = max(memory.stage_c_row(shape, len(q) + grow(q), len(q.targets), layer, shared_c) for q in seqs_c)
    stages = [
        ("pre-edit neighbour answers", min(8, images * questions), 1,
         memory.generate_row(shape, len(nb_seq) + grow(nb_seq), 16), 0),
        (f"A: mask learning (chunk of {rows_a // per_image} images x {per_image} rows)", rows_a, per_image, per_a, 0),
        ("C: gated fine-tuning (one edit's rows)", len(seqs_c), len(seqs_c), per_c,
         memory.stage_c_shared(shape, shared_c, layer)),
        (f"answer ({NEW_TOKENS} new tokens)", 1, 1, memory.generate_row(shape, len(ask) + grow(ask), NEW_TOKENS), 0),
        ("evaluation: batched answers", 8, 1, memory.generate_row(shape, len(ask) + grow(ask), NEW_TOKENS), 0),
        ("evaluation: answer scoring", 8, 1,
         memory.score_row(shape, len(seqs_c[0]) + grow(seqs_c[0]), len(seqs_c[0].targets)), 0),
    ]
    dev = torch.device("cuda:0")
    rows = []
    for name, n, least, per_row, fixed in stages:
        fits = {}
        for card in CARDS_GIB:
            free = card * GIB - CONTEXT_GIB * GIB - weights
            try:
                fits[card] = memory.rows_that_fit(per_row, {dev: max(0, int(free))}, {dev: 1.0}, fixed=fixed,
                                                  minimum=least, stage=name)
            except memory.MemoryBudgetError:
                fits[card] = 0
        rows.append({"stage": name, "rows": n, "per_row_mib": per_row / (1 << 20), "fixed_mib": fixed / (1 << 20),
                     "peak_gib": (weights + fixed + n * per_row) / GIB,
                     **{f"rows_fit_{c}gib": fits[c] for c in CARDS_GIB}})
    return {"family": family, "scale": scale, "dtype": "float16", "parameters": params, "weights_gib": weights / GIB,
            "shape": shape.to_dict(), "layer": layer, "kv_per_token_kib": shape.kv_token / 1024,
            "tokens": {"image": n_img, "stage_a_prefix_max": max(q.subject_pos + grow(q) for q in seqs_a),
                       "stage_a_tail_max": max(len(q) - q.subject_pos for q in seqs_a),
                       "stage_c_row_max": max(len(q) + grow(q) for q in seqs_c), "answer_prompt": len(ask) + grow(ask)},
            "images": images, "max_rows": max_rows, "stages": rows}


def memory_table(m: dict) -> str:
    cards = " | ".join(f"rows that fit, {c} GiB card" for c in CARDS_GIB)
    out = [f"| stage | rows | MiB per row | peak GiB (weights {m['weights_gib']:.1f} + rows) | {cards} |",
           "|---|---|---|---|" + "---|" * len(CARDS_GIB)]
    for r in m["stages"]:
        fixed = f" + {r['fixed_mib'] / 1024:.2f} GiB once" if r["fixed_mib"] else ""
        fits = " | ".join(str(r[f"rows_fit_{c}gib"]) for c in CARDS_GIB)
        out.append(f"| {r['stage']} | {r['rows']} | {r['per_row_mib']:.1f}{fixed} | {r['peak_gib']:.2f} | {fits} |")
    return "\n".join(out)


def dry_run(args) -> int:
    m = modelled(args.family, args.scale, args.images, args.questions or 5, args.max_rows, args.layer)
    s, t = m["shape"], m["tokens"]
    print(f"{args.family} {args.scale} shape, fp16, random weights: {m['parameters'] / 1e9:.2f} B parameters "
          f"({m['weights_gib']:.2f} GiB); decoder {s['layers']} layers, hidden {s['hidden']}, FFN {s['ffn']}, "
          f"{s['heads']} heads ({s['kv_heads']} key/value) of {s['head_dim']}, vocab {s['vocab']}; "
          f"{t['image']} image tokens per image; keys/values {m['kv_per_token_kib']:.0f} KiB per token; "
          f"edited layer {m['layer']}")
    print(f"tokens: Stage A prefix up to {t['stage_a_prefix_max']}, tail up to {t['stage_a_tail_max']}; "
          f"Stage C rows up to {t['stage_c_row_max']}; an answer's prompt {t['answer_prompt']}")
    print(f"{args.images} images, max_rows {args.max_rows}; the memory model's numbers (no GPU used; a card's "
          f"free memory = its size - {CONTEXT_GIB:.0f} GiB - the weights, {HEADROOM_NOTE}):")
    print(memory_table(m))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(m, indent=2) + "\n")
    return 0


def table(res: dict) -> str:
    rows = ["| stage | seconds | peak GPU GiB |", "|---|---|---|"]
    for r in res["stages"]:
        gpu = f"{r['peak_gpu_gib']:.2f}" if "peak_gpu_gib" in r else "–"
        detail = f" ({r['detail']})" if r.get("detail") else ""
        rows.append(f"| {r['stage']}{detail} | {r['seconds']:.2f} | {gpu} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=tuple(SHAPES), default="7b")
    ap.add_argument("--family", choices=tuple(FAMILY_SHAPES), default="llava",
                    help="llava (LLaVA-1.5-7B) or qwen2_5_vl (Qwen2.5-VL-7B); default llava")
    ap.add_argument("--dry-run", action="store_true", help="build the configs only and print the shapes and the "
                    "memory model's bytes per row and peak per stage (CPU, no model built)")
    ap.add_argument("--max-rows", type=int, default=96, help="Stage A's max_rows for --dry-run (default 96)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--images", type=int, default=2, help="synthetic passport images for Stages A-C (default 2)")
    ap.add_argument("--mask-steps", type=int, default=None, help="Stage A steps (default: the preset's, 25)")
    ap.add_argument("--edit-steps", type=int, default=None, help="Stage C steps per edit (default: the preset's, 10)")
    ap.add_argument("--questions", type=int, default=None, help="edits per image (default: the preset's, 5)")
    ap.add_argument("--layer", type=int, default=None,
                    help="edited layer (default: the preset's; 11 for LLaVA-1.5-7B, the paper's)")
    ap.add_argument("--folder", default=None, help="where the random model is written (default: a folder under "
                    "the temp dir, reused when it holds the same config)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error("--images must be at least 1")
    if args.dry_run:
        return dry_run(args)
    if args.folder is None:
        name = "llava-1.5-7b-shape-random-fp16" if args.scale == "7b" else "llava-tiny-shape-random-fp16"
        if args.family != "llava":
            name = f"{args.family}-{args.scale}-shape-random-fp16"
        args.folder = str(Path(tempfile.gettempdir()) / name)
    check_can_run(args)
    res = run_bench(args)
    text = json.dumps(res, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    print()
    n = res["model"]["parameters"]
    size = f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e3:.0f} k"
    print(f"{args.scale} shape, {size} parameters, random weights, {args.device}:")
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
