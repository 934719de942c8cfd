"""``ng``: the core, headless. Every command prints progress to stderr and results to stdout."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ng_core.cli import args as A  # noqa: E402

MODEL_HELP = ("model: 'ng-mini-llava' (default, embedded), 'tiny-random' (random, for tests), or a local "
              "llava-hf checkpoint folder")


def _add_model(p, with_run=False):
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16"],
                   help="weights dtype for a local checkpoint (default: as saved)")
    p.add_argument("--device-map", default=None, type=A.device_map,
                   help="accelerate device map for a local checkpoint, e.g. 'auto' to shard over GPUs")
    p.add_argument("--reading", default="auto", choices=["auto", "on", "off"],
                   help="OCR lines of the image in the prompt: auto = as the model folder says (on for "
                        "ng-mini-llava, off for llava-hf checkpoints)")
    if with_run:
        p.add_argument("--run", default=None, help="apply the edit (deltas) of this run bundle folder")


def _load(args):
    from ng_core.models import load_model
    from ng_core.progress import Progress, stderr_printer

    reading = {"auto": None, "on": True, "off": False}[getattr(args, "reading", "auto") or "auto"]
    return load_model(args.model, dtype=args.dtype, device_map=args.device_map, reading=reading,
                      progress=Progress(stderr_printer()))


def _records(args, adapter, preset):
    from ng_core.data import load_dataset

    ds = load_dataset(args.data, image_root=getattr(args, "image_root", None))
    cats = [c.strip() for c in args.category.split(",") if c.strip()]
    unknown = [c for c in cats if c not in ds.categories]
    if unknown:
        from ng_core.errors import DataError

        raise DataError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} in {args.data}; "
                        f"available: {', '.join(ds.categories)}")
    n = args.max_images if args.max_images is not None else preset["max_images"]
    out = {}
    for c in cats:
        recs = ds.records(category=c, split=args.split)
        if not recs:
            from ng_core.errors import DataError

            raise DataError(f"{args.data} has no '{args.split}' images for category {c!r}")
        out[c] = recs[:n]
    return out


def _configs(args, adapter):
    from dataclasses import replace

    from ng_core.method.presets import load_preset

    preset = load_preset(adapter.model_id, adapter.n_layers, override=getattr(args, "preset", None))
    mask, edit = preset["mask"], preset["edit"]
    if getattr(args, "schedule", None):
        mask = replace(mask, schedule=args.schedule)
        edit = replace(edit, schedule=args.schedule)
    for k in ("privacy_value", "topk", "threshold"):
        v = getattr(args, k, None)
        if v is not None:
            mask = replace(mask, **{k: v})
    if getattr(args, "mask_steps", None) is not None:
        mask = replace(mask, steps=args.mask_steps)
    for k, attr in (("lr", "lr"), ("steps", "edit_steps"), ("gate_scope", "gate_scope"), ("method", "edit_method"),
                    ("questions_per_image", "questions"), ("general_weight", "general_weight")):
        v = getattr(args, attr, None)
        if v is not None:
            edit = replace(edit, **{k: v})
    edit = replace(edit, seed=getattr(args, "seed", 0) or 0)
    layer = args.layer if getattr(args, "layer", None) is not None else preset["layer"]
    for lay in str(layer).split(","):
        if not 0 <= int(lay) < adapter.n_layers:
            from ng_core.errors import ArgumentError

            raise ArgumentError(f"layer {lay} is out of range: this model has layers 0..{adapter.n_layers - 1}")
    return preset, layer, mask, edit


def _data_args(p):
    p.add_argument("--data", required=True, help="dataset folder (project format, or paper-format JSONs)")
    p.add_argument("--image-root", default=None, help="image root for paper-format datasets")
    p.add_argument("--category", required=True, type=A.categories, help="category id(s), comma-separated, e.g. passport,receipt")
    p.add_argument("--split", default="train", help="split whose images are used (default: train)")
    p.add_argument("--max-images", type=A.positive_int, default=None, help="images per category (default: preset, 10)")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--schedule", choices=["fast", "naive"], default=None,
                   help="fast (cached prefixes, default) or naive (the reference code's cost); same results")
    p.add_argument("--preset", default=None,
                   help="hyperparameter preset: a shipped name (see `ng presets`) or a JSON file "
                        "(default: chosen from the model)")


def cmd_ask(args) -> int:
    from ng_core.method.bundle import Run
    from ng_core.method.interventions import intervention_hooks, subject_positions

    a = _load(args)
    deltas = Run.load(args.run, a).deltas() if args.run else []
    feats = a.encode_image(args.image) if args.image else None
    reading = a.read_image(args.image) if args.image else None
    hooks = (lambda b: intervention_hooks(a, [], deltas, subject_positions(b))) if deltas else None
    g = a.generate([(feats, args.prompt, None, reading)], max_new_tokens=args.max_new_tokens, hooks_for=hooks,
                   do_sample=args.sample, seed=args.seed)[0]
    verdict = None
    try:
        from ng_core.evaluation.judge import judge

        verdict = judge(g.text)
    except ImportError:
        pass
    if args.json:
        out = {"model": a.model_id, "image": args.image, "prompt": args.prompt, "answer": g.text,
               "run": args.run}
        if verdict is not None:
            out.update({"refused": verdict.refused, "matched": verdict.matched})
        print(json.dumps(out))
    else:
        print(g.text)
    return 0


def cmd_localize(args) -> int:
    from ng_core.method.bundle import check_out
    from ng_core.method.pipeline import localize_run
    from ng_core.method.presets import preset_json
    from ng_core.progress import Progress, stderr_printer

    check_out(args.out)  # before any work
    a = _load(args)
    preset, layer, mask, _ = _configs(args, a)
    layers = [int(x) for x in str(args.layer).split(",")] if args.layer is not None else [layer]
    recs = _records(args, a, preset)
    run = localize_run(a, recs, layers, mask, Progress(stderr_printer()), seed=args.seed)
    run.config["preset"] = preset_json(preset)
    run.save(args.out)
    for cat, per in run.metrics["masks"].items():
        for l, m in per.items():
            print(f"{cat} {l}: {m['n_selected']} privacy neurons of {a.hidden_size} "
                  f"({m['n_images']} images)")
    print(f"saved {args.out}")
    return 0


def cmd_edit(args) -> int:
    from ng_core.method.bundle import Run, check_out
    from ng_core.method.presets import preset_json
    from ng_core.method.pipeline import edit_run
    from ng_core.progress import Progress, stderr_printer

    check_out(args.out)  # before any work
    a = _load(args)
    preset, layer, mask, edit = _configs(args, a)
    recs = _records(args, a, preset)
    masks = None
    out = Path(args.out)
    if (out / "run.json").exists():
        prev = Run.load(out, a)
        masks = prev.masks() or None
        if masks:
            print(f"reusing the masks in {out}", file=sys.stderr)
    run = edit_run(a, recs, layer, mask, edit, Progress(stderr_printer()), seed=args.seed, masks=masks)
    run.config["preset"] = preset_json(preset)
    run.save(out)
    for cat, d in run.metrics["diagnostics"].items():
        print(f"{cat}: {d['n_edits']} edits, gate {d['gate_size']} rows, |dW|={d['delta_norm']:.4g}, "
              f"gate leak {d['gate_leak']:.3f}")
    print(f"saved {out}")
    return 0


def cmd_scores(args) -> int:
    from ng_core.progress import Progress, stderr_printer
    from ng_core.method.bundle import check_out
    from ng_core.method.scores import ScoreConfig, compute_scores

    check_out(args.out)  # before any work
    a = _load(args)
    preset, _, mask, _ = _configs(args, a)
    recs = _records(args, a, preset)
    layers = tuple(int(x) for x in args.layers.split(",")) if args.layers else None
    cfg = ScoreConfig(method=args.method, position=args.position, layers=layers, max_pairs=args.max_pairs)
    run = compute_scores(a, [r for rs in recs.values() for r in rs], cfg, mask, Progress(stderr_printer()),
                         seed=args.seed)
    run.save(args.out)
    for k, v in run.tensors["scores"].items():
        if "_" not in k.split("/")[1]:
            top = v.abs().flatten().topk(min(5, v.numel()))
            cells = [f"L{int(i) // v.shape[1]}:{int(i) % v.shape[1]}" for i in top.indices]
            print(f"{k} {tuple(v.shape)} top |score|: {', '.join(cells)}")
    print(f"saved {args.out}")
    return 0


def cmd_runs(args) -> int:
    from ng_core.method.bundle import list_runs

    rows = list_runs(args.root)
    if args.json:
        print(json.dumps(rows, indent=2))
    for r in rows:
        print(f"{r['name']:30s} {r['kind'] or '?':9s} {r['model'] or '?':20s} {r['created'] or ''} "
              f"{r['error'] or ''}".rstrip())
    if not rows:
        print(f"no run bundles under {args.root}", file=sys.stderr)
    return 0


def cmd_model_info(args) -> int:
    from ng_core.method.presets import load_preset

    a = _load(args)
    p = load_preset(a.model_id, a.n_layers)
    info = {"model": a.model_id, "source": a.source, "layers": a.n_layers, "hidden_size": a.hidden_size,
            "ffn_size": a.ffn_size, "parameters": a.n_parameters(), "image_tokens": a.n_image_tokens,
            "dtype": str(a.dtype), "fingerprint": a.fingerprint(), "preset": p["name"], "default_layer": p["layer"]}
    print(json.dumps(info, indent=2))
    return 0


def cmd_presets(args) -> int:
    from ng_core.method.presets import available, load_preset, preset_json

    if args.model:
        a = _load(args)
        print(json.dumps(preset_json(load_preset(a.model_id, a.n_layers, override=args.preset)), indent=2))
        return 0
    for name, data in available().items():
        print(f"{name:22s} {data.get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ng", description="Neural Gate Studio: find, score, gate and edit privacy "
                                 "neurons in LLaVA-style vision-language models.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("ask", help="answer a question about an image", description="Answer a prompt about an "
                       "image with the model (greedy), optionally with a run's edit applied.")
    _add_model(p, with_run=True)
    p.add_argument("--image", default=None, help="image file (png, jpg, webp); omit for a text-only prompt")
    p.add_argument("--prompt", required=True, help="the question")
    p.add_argument("--max-new-tokens", type=A.new_tokens, default=32,
                   help=f"answer length in tokens, 1..{A.MAX_NEW_TOKENS} (32)")
    p.add_argument("--sample", action="store_true", help="seeded sampling (top-p 0.9) instead of greedy")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("localize", help="learn privacy-neuron masks (Stages A+B)",
                       description="Learn per-image neuron masks at the subject token and keep the neurons "
                       "flagged in more than --threshold of a category's images. Writes a run bundle.")
    _add_model(p)
    _data_args(p)
    p.add_argument("--layer", default=None, type=A.layers, help="layer(s), comma-separated (default: the model's preset)")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Adam steps per image (default 25)")
    p.add_argument("--privacy-value", type=A.finite_float, default=None, help="flag neurons with tanh(m) below this (0)")
    p.add_argument("--topk", type=A.open_fraction, default=None, help="flag the fraction of smallest m instead")
    p.add_argument("--threshold", type=A.fraction, default=None, help="consensus threshold, strict (0.3)")
    p.add_argument("--out", required=True, help="run bundle folder to write")
    p.set_defaults(func=cmd_localize)

    p = sub.add_parser("edit", help="run a Neural Gate edit (or a baseline)",
                       description="Localize (unless OUT already holds masks), then fine-tune down_proj of the "
                       "layer with gradients gated to the privacy neurons. Writes a run bundle with the deltas.")
    _add_model(p)
    _data_args(p)
    p.add_argument("--layer", type=A.bounded_int(0, 9999), default=None, help="edited layer (default: the model's preset)")
    p.add_argument("--gate-scope", default=None, choices=["subject_position", "all_positions", "weight_rows"],
                   help="where the gradient gate acts (default: preset; the authors' code: subject_position)")
    p.add_argument("--method", dest="edit_method", default=None,
                   choices=["neural_gate", "ft", "random_gate", "complement_gate"],
                   help="neural_gate (default), ft (no gate), random_gate (same size), complement_gate")
    p.add_argument("--lr", type=A.positive_float, default=None, help="Adam learning rate for down_proj (preset)")
    p.add_argument("--edit-steps", type=A.steps, default=None, help="steps per edit (10)")
    p.add_argument("--questions", type=A.bounded_int(1, 1000), default=None, help="paraphrases per image (5)")
    p.add_argument("--general-weight", type=A.nonneg_float, default=None,
                   help="weight of the general-question locality term (0 = the authors' loss; preset)")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Stage A steps per image (25)")
    p.add_argument("--out", required=True, help="run bundle folder to write")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("scores", help="per-layer neuron privacy scores for heatmaps",
                       description="Score every neuron of every layer (residual dims and FFN neurons).")
    _add_model(p)
    _data_args(p)
    p.add_argument("--method", default="contrast", choices=["mask", "gradxact", "contrast"],
                   help="mask (learned, joint over layers), gradxact (captum), contrast (paired Cohen's d)")
    p.add_argument("--position", default="subject", choices=["subject", "last"],
                   help="token scored: the subject's last token or the last prompt token")
    p.add_argument("--layers", default=None, type=A.layers, help="layers, comma-separated (default: all)")
    p.add_argument("--max-pairs", type=A.positive_int, default=None, help="cap on (sensitive, benign) prompt pairs")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Stage A steps for --method mask")
    p.add_argument("--out", required=True, help="run bundle folder to write")
    p.set_defaults(func=cmd_scores)

    p = sub.add_parser("presets", help="list hyperparameter presets, or show the one a model gets",
                       description="Per-model hyperparameter presets (ng_core/method/presets/*.json). With --model, print "
                       "the resolved preset for that model as JSON.")
    _add_model(p)
    p.add_argument("--preset", default=None, help="resolve this preset name or JSON file instead")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("runs", help="list run bundles", description="List the run bundles under a folder.")
    p.add_argument("root", nargs="?", default="runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("model", help="show (and build) a model", description="Load a model (assembling the "
                       "embedded default on first use) and print its shape, size, preset and fingerprint.")
    _add_model(p)
    p.set_defaults(func=cmd_model_info)

    for mod in ("ng_core.cli.data", "ng_core.cli.evaluate", "ng_core.evaluation.tradeoff", "ng_core.studio.html_report", "ng_core.cli.sweep"):
        try:
            __import__(mod, fromlist=["register"]).register(sub)
        except ImportError as e:
            if e.name not in (mod, mod.rsplit(".", 1)[0]):
                raise
    return ap


def main(argv=None) -> int:
    from ng_core.errors import NGError

    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory; try smaller inputs (fewer images, a shorter prompt)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing was saved (an existing run at --out is unchanged)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
