"""Benchmark Neural Gate's fast schedule against the reference-cost (naive) schedule.

Measures, for one category at one layer: Stage A (mask learning) and Stage C (gated
fine-tuning) wall time for both schedules, how far their results differ, and the
peak resident memory of a whole edit (localize + edit) in a fresh process.

    python bench/bench_neural_gate.py --model ng-mini-llava --data DATA --category passport \
        --images 10 --out bench/results/neural_gate.json

Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _records(args):
    from ng_core.data import load_dataset

    return load_dataset(args.data).records(category=args.category, split="train")[: args.images]


def stage_times(args) -> dict:
    import torch

    from ng_core.method.edit import edit_items, gated_finetune
    from ng_core.method.locality import LocalityCache
    from ng_core.method.localize import consensus, binarize, learn_masks
    from ng_core.models import load_model
    from ng_core.method.presets import load_preset

    torch.manual_seed(0)
    a = load_model(args.model)
    p = load_preset(a.model_id, a.n_layers)
    layer = args.layer if args.layer is not None else p["layer"]
    recs = _records(args)
    mask_cfg = replace(p["mask"], steps=args.mask_steps or p["mask"].steps)
    edit_cfg = replace(p["edit"], questions_per_image=args.questions or p["edit"].questions_per_image,
                       gate_scope=args.gate_scope or p["edit"].gate_scope, steps=args.edit_steps or p["edit"].steps)
    loc = LocalityCache(a)
    # warm the caches both schedules share (pre-edit neighbour answers), so only the schedules are timed
    loc.prefetch([(r.image, nb, r.subject) for r in recs for nb in r.neighbours[: edit_cfg.questions_per_image]])
    out = {"model": a.model_id, "layer": layer, "images": len(recs), "mask_steps": mask_cfg.steps,
           "edits": len(recs) * edit_cfg.questions_per_image, "edit_steps": edit_cfg.steps,
           "gate_scope": edit_cfg.gate_scope, "threads": torch.get_num_threads()}
    masks = {}
    for sched in ("fast", "naive") if "A" in args.stages else ("fast",):
        a.caches.features.clear()
        t = time.perf_counter()
        raw, _ = learn_masks(a, recs, [layer], replace(mask_cfg, schedule=sched), locality=loc)
        out[f"stage_a_{sched}_s"] = time.perf_counter() - t
        masks[sched] = raw[layer]
        print(f"stage A {sched}: {out[f'stage_a_{sched}_s']:.1f} s", file=sys.stderr, flush=True)
    sel = {k: consensus(binarize(v, mask_cfg.privacy_value, mask_cfg.topk), mask_cfg.threshold)[1]
           for k, v in masks.items()}
    out["stage_a_selected"] = {k: int(v.sum()) for k, v in sel.items()}
    if "naive" in masks:
        out["stage_a_speedup"] = out["stage_a_naive_s"] / out["stage_a_fast_s"]
        out["stage_a_max_abs_diff"] = float((masks["fast"] - masks["naive"]).abs().max())
        out["stage_a_selection_disagreements"] = int((sel["fast"] != sel["naive"]).sum())
    gate = sel["fast"]
    if "C" not in args.stages:
        return out
    items = edit_items(recs, edit_cfg, loc)
    deltas = {}
    for sched in ("fast", "naive"):
        t = time.perf_counter()
        res = gated_finetune(a, items, layer, gate, replace(edit_cfg, schedule=sched))
        out[f"stage_c_{sched}_s"] = time.perf_counter() - t
        deltas[sched] = res.delta
        print(f"stage C {sched}: {out[f'stage_c_{sched}_s']:.1f} s", file=sys.stderr, flush=True)
    out["stage_c_speedup"] = out["stage_c_naive_s"] / out["stage_c_fast_s"]
    d = deltas["fast"] - deltas["naive"]
    out["stage_c_rel_diff"] = float(d.norm() / deltas["naive"].norm().clamp(min=1e-30))
    return out


def peak_memory(args) -> dict:
    """Peak RSS of a fresh process that loads the model, localizes and edits (the fast schedule)."""
    code = (
        "import resource, sys, json, time\n"
        f"import torch; torch.set_num_threads({args.threads or 0} or torch.get_num_threads())\n"
        "from dataclasses import replace\n"
        "from ng_core.models import load_model\n"
        "from ng_core.method.presets import load_preset\n"
        "from ng_core.method.pipeline import edit_run\n"
        "from ng_core.data import load_dataset\n"
        f"a = load_model({args.model!r})\n"
        "load_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "p = load_preset(a.model_id, a.n_layers)\n"
        f"recs = load_dataset({str(args.data)!r}).records(category={args.category!r}, split='train')[:{args.images}]\n"
        f"layer = {args.layer!r} if {args.layer!r} is not None else p['layer']\n"
        f"mc = replace(p['mask'], steps={args.mask_steps or 0} or p['mask'].steps)\n"
        f"ec = replace(p['edit'], questions_per_image={args.questions or 0} or p['edit'].questions_per_image, "
        f"steps={args.edit_steps or 0} or p['edit'].steps)\n"
        "t = time.perf_counter()\n"
        f"edit_run(a, {{{args.category!r}: recs}}, layer, mc, ec)\n"
        "print(json.dumps({'load_peak_rss_mb': load_rss / 1024, 'edit_peak_rss_mb': "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'edit_run_s': time.perf_counter() - t}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", default="passport")
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--mask-steps", type=int, default=None)
    ap.add_argument("--questions", type=int, default=None)
    ap.add_argument("--edit-steps", type=int, default=None)
    ap.add_argument("--gate-scope", default=None)
    ap.add_argument("--stages", default="AC", help="schedules compared for stages A and/or C (default AC; "
                    "with C only, Stage A runs the fast schedule once, for the gate)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = {"command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d"),
           "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}, Python {platform.python_version()}"}
    res |= stage_times(args)
    if not args.skip_memory:
        res |= peak_memory(args)
    text = json.dumps(res, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    rows = ["", "| stage | naive (s) | fast (s) | speed-up | agreement |", "|---|---|---|---|---|"]
    if "stage_a_naive_s" in res:
        rows.append(f"| A: masks, {res['images']} images x {res['mask_steps']} steps | {res['stage_a_naive_s']:.1f} | "
                    f"{res['stage_a_fast_s']:.1f} | {res['stage_a_speedup']:.2f}x | max abs diff "
                    f"{res['stage_a_max_abs_diff']:.2e}, {res['stage_a_selection_disagreements']} selection differences |")
    if "stage_c_naive_s" in res:
        rows.append(f"| C: {res['edits']} edits x {res['edit_steps']} steps | {res['stage_c_naive_s']:.1f} | "
                    f"{res['stage_c_fast_s']:.1f} | {res['stage_c_speedup']:.2f}x | relative ΔW diff "
                    f"{res['stage_c_rel_diff']:.2e} |")
    if "edit_peak_rss_mb" in res:
        rows.append(f"| peak RSS, whole edit (fresh process) | | {res['edit_peak_rss_mb']:.0f} MB | | "
                    f"after loading: {res['load_peak_rss_mb']:.0f} MB |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
