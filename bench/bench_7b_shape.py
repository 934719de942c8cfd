"""What a LLaVA-1.5-7B user waits for: load, Stage A/B/C and one answer, at the 7B's exact shape.

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

On a CUDA machine (needs about 30 GiB of GPU memory and 15 GiB of free disk)::

    .venv/bin/python bench/bench_7b_shape.py --scale 7b --device cuda --json bench/results/7b_shape.json

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
SHAPES = {"7b": SHAPE_7B, "tiny": SHAPE_TINY}


class BenchError(SystemExit):
    """A clear refusal: exits with status 1 and the message."""

    def __init__(self, message: str):
        super().__init__(f"bench_7b_shape: error: {message}")


# ---------------------------------------------------------------------------- the model
def build_tokenizer():
    """The project's offline tokenizer in llava-1.5 style (SentencePiece-like, ``USER: ... ASSISTANT:``)."""
    from ng_core.models.tiny_random import build_tokenizer as _build

    return _build("metaspace")


def build_config(scale: str, tok=None):
    """The ``LlavaConfig`` of ``scale`` ("7b" or "tiny"); special token ids come from ``tok``."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig  # deferred: slow import

    if scale not in SHAPES:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SHAPES)}")
    tok = tok or build_tokenizer()
    shape = SHAPES[scale]
    if len(tok) > shape["text"]["vocab_size"]:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than the {scale} vocabulary")
    vcfg = CLIPVisionConfig(**shape["vision"])
    tcfg = LlamaConfig(**shape["text"], pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id)
    return LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_index=tok.convert_tokens_to_ids("<image>"),
                       **shape["llava"])


def image_tokens(cfg) -> int:
    """Image tokens per image the config gives (patches; the CLS token is dropped by 'default')."""
    v = cfg.vision_config
    n = (v.image_size // v.patch_size) ** 2
    return n if cfg.vision_feature_select_strategy == "default" else n + 1


def shape_record(scale: str, cfg) -> dict:
    """What a folder is checked against before it is reused."""
    return {"scale": scale, "dtype": "float16", "shape": SHAPES[scale],
            "image_token_index": cfg.image_token_id, "pad_token_id": cfg.text_config.pad_token_id}


def folder_matches(folder: Path, record: dict) -> bool:
    p = folder / SHAPE_FILE
    try:
        ok = json.loads(p.read_text()) == json.loads(json.dumps(record))
    except (OSError, ValueError):
        return False
    return ok and any(folder.glob("*.safetensors")) and (folder / "config.json").is_file()


def write_model(folder: Path, scale: str, device: str) -> dict:
    """Build the random fp16 model on ``device`` and save it as a llava-hf folder (safetensors shards)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from ng_core.models.image_processing import ImageConfig

    tok = build_tokenizer()
    cfg = build_config(scale, tok)
    record = shape_record(scale, cfg)
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
            model = LlavaForConditionalGeneration(cfg)
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
                         "far too slow to time; use --scale tiny --device cpu to check the script here")
    total = sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
    if total / GIB < MIN_GPU_GIB_7B:
        raise BenchError(f"--scale 7b needs about {MIN_GPU_GIB_7B:.0f} GiB of GPU memory in all; "
                         f"this machine has {total / GIB:.1f} GiB")
    first = torch.cuda.get_device_properties(0).total_memory / GIB
    if first < 16 and not folder_matches(Path(args.folder), shape_record("7b", build_config("7b"))):
        raise BenchError(f"building the random 7B needs 16 GiB on cuda:0 (it has {first:.1f} GiB); "
                         "pass --folder with an already built model")
    probe = Path(args.folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / GIB
    if free < MIN_DISK_GIB_7B and not folder_matches(Path(args.folder), shape_record("7b", build_config("7b"))):
        raise BenchError(f"the fp16 7B folder needs {MIN_DISK_GIB_7B:.0f} GiB of disk under {probe}; "
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
    print(f"building / checking the random {args.scale} model in {folder}", file=sys.stderr, flush=True)
    built = write_model(folder, args.scale, build_dev)
    stages = Stages(args.device)
    device_map = "auto" if args.device == "cuda" else {"": "cpu"}
    a = stages.run("load (fp16, device_map)", lambda: load_model(str(folder), dtype="float16",
                                                                  device_map=device_map))
    # the preset a real llava-1.5-7b folder gets (the paper's layer and steps), or the folder's own
    preset = load_preset("llava-1.5-7b-hf" if args.scale == "7b" else a.model_id, a.n_layers)
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
        "scale": args.scale, "device": args.device, "random_weights": True, "folder": str(folder), **built,
        "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}, Python {platform.python_version()}",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "gpus": ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                 if args.device == "cuda" else []),
        "model": {"layers": a.n_layers, "hidden": a.hidden_size, "ffn": a.ffn_size,
                  "heads": cfg.text_config.num_attention_heads, "vocab": cfg.text_config.vocab_size,
                  "image_tokens": image_tokens(cfg), "dtype": str(a.dtype).replace("torch.", ""),
                  "parameters": sum(p.numel() for p in a.model.parameters())},
        "layer": layer, "images": len(recs), "mask_steps": mask_cfg.steps, "edits": n_edits,
        "edit_steps": edit_cfg.steps, "selected_neurons": int(gate.sum()),
        "delta_norm": float(res.delta.norm()), "answer_tokens": len(gen.token_ids),
        "stages": stages.rows,
    }
    return out


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
    if args.folder is None:
        name = "llava-1.5-7b-shape-random-fp16" if args.scale == "7b" else "llava-tiny-shape-random-fp16"
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
