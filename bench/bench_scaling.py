"""How Neural Gate's costs grow with the number of images and with the sequence length.

For one category at the preset layer, with the fast schedule:

- images: Stage A (mask learning) and Stage C (gated fine-tuning) wall time for 1, 2, 4, ... images;
- sequence length: the same two images with N filler words put before every prompt (Stage A's context
  templates, the paraphrases and the neighbours alike), timing Stage A, Stage C and a 16-token greedy answer.

    python bench/bench_scaling.py --model ng-mini-llava --data DATA --category passport \
        --images 1,2,4 --context-words 0,60,180 --out bench/results/scaling.json

Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FILLER = ("Please read the whole question carefully before answering and keep the answer short and "
          "precise because it will be checked against the image by a reviewer later today").split()


def _with_context(rec, n_words: int):
    """``rec`` with ``n_words`` filler words before every prompt (the subject stays in each prompt)."""
    if n_words <= 0:
        return rec
    words = (FILLER * (n_words // len(FILLER) + 1))[:n_words]
    ctx = " ".join(words) + ". "
    return replace(rec, rewrite_prompt=ctx + rec.rewrite_prompt, paraphrases=tuple(ctx + p for p in rec.paraphrases),
                   neighbours=tuple(ctx + n for n in rec.neighbours))


def _one(a, recs, layer, mask_cfg, edit_cfg):
    """(Stage A s, Stage C s, 16-token answer s, prompt tokens) for ``recs`` on a warm model."""
    import torch

    from ng_core.method.edit import edit_items, gated_finetune
    from ng_core.method.locality import LocalityCache
    from ng_core.method.localize import binarize, consensus, learn_masks

    loc = LocalityCache(a)
    loc.prefetch([(r.image, nb, r.subject) for r in recs for nb in r.neighbours[: edit_cfg.questions_per_image]])
    for r in recs:
        a.encode_image(r.image)
    t = time.perf_counter()
    raw, _ = learn_masks(a, recs, [layer], mask_cfg, locality=loc)
    t_a = time.perf_counter() - t
    gate = consensus(binarize(raw[layer], mask_cfg.privacy_value, mask_cfg.topk), mask_cfg.threshold)[1]
    if not bool(gate.any()):
        gate = torch.zeros_like(gate)
        gate[:32] = True  # a gate of some size, so the timing is the same kind of work
    items = edit_items(recs, edit_cfg, loc)
    t = time.perf_counter()
    gated_finetune(a, items, layer, gate, edit_cfg)
    t_c = time.perf_counter() - t
    r = recs[0]
    feats = a.encode_image(r.image)
    t = time.perf_counter()
    a.generate([(feats, r.paraphrases[0], None)], max_new_tokens=16)
    t_g = time.perf_counter() - t
    n_tok = len(a.build(r.paraphrases[0], subject=r.subject, has_image=True))
    return t_a, t_c, t_g, n_tok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", default="passport")
    ap.add_argument("--images", default="1,2,4", help="image counts, comma-separated")
    ap.add_argument("--context-words", default="0,60,180", help="filler words before every prompt, comma-separated")
    ap.add_argument("--mask-steps", type=int, default=3)
    ap.add_argument("--edit-steps", type=int, default=2)
    ap.add_argument("--questions", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ng_core.data import load_dataset
    from ng_core.models import load_model
    from ng_core.method.presets import load_preset

    a = load_model(args.model)
    p = load_preset(a.model_id, a.n_layers)
    layer = p["layer"]
    mask_cfg = replace(p["mask"], steps=args.mask_steps)
    edit_cfg = replace(p["edit"], steps=args.edit_steps, questions_per_image=args.questions, general_weight=0.0)
    recs = load_dataset(args.data).records(category=args.category, split="train")
    counts = [int(x) for x in args.images.split(",") if x.strip()]
    words = [int(x) for x in args.context_words.split(",") if x.strip()]
    if max(counts) > len(recs):
        print(f"error: the train split of {args.category} has only {len(recs)} images", file=sys.stderr)
        return 2
    res = {"command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d"),
           "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}, torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads",
           "model": a.model_id, "layer": layer, "mask_steps": mask_cfg.steps, "edit_steps": edit_cfg.steps,
           "questions_per_image": edit_cfg.questions_per_image, "by_images": [], "by_length": []}
    _one(a, recs[:1], layer, mask_cfg, edit_cfg)  # warm-up (allocator, caches)
    for n in counts:
        t_a, t_c, t_g, n_tok = _one(a, recs[:n], layer, mask_cfg, edit_cfg)
        res["by_images"].append({"images": n, "stage_a_s": t_a, "stage_c_s": t_c, "prompt_tokens": n_tok})
        print(f"images {n}: stage A {t_a:.1f} s, stage C {t_c:.1f} s", file=sys.stderr, flush=True)
    for w in words:
        two = [_with_context(r, w) for r in recs[:2]]
        t_a, t_c, t_g, n_tok = _one(a, two, layer, mask_cfg, edit_cfg)
        res["by_length"].append({"context_words": w, "prompt_tokens": n_tok, "stage_a_s": t_a, "stage_c_s": t_c,
                                 "answer_16_tokens_s": t_g})
        print(f"+{w} words ({n_tok} tokens): stage A {t_a:.1f} s, stage C {t_c:.1f} s, answer {t_g:.2f} s",
              file=sys.stderr, flush=True)
    text = json.dumps(res, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    print("\n| images | Stage A (s) | Stage C (s) |\n|---|---|---|")
    for r in res["by_images"]:
        print(f"| {r['images']} | {r['stage_a_s']:.1f} | {r['stage_c_s']:.1f} |")
    print("\n| prompt tokens (filler words) | Stage A (s) | Stage C (s) | 16-token answer (s) |\n|---|---|---|---|")
    for r in res["by_length"]:
        print(f"| {r['prompt_tokens']} (+{r['context_words']}) | {r['stage_a_s']:.1f} | {r['stage_c_s']:.1f} | "
              f"{r['answer_16_tokens_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
