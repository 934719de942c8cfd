"""``ng``: the core, headless. Every command prints progress to stderr and results to stdout."""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ng_core.cli import args as A  # noqa: E402
from ng_core.cli import data as cli_data  # noqa: E402
from ng_core.cli import evaluate as cli_evaluate  # noqa: E402
from ng_core.cli import inputs  # noqa: E402
from ng_core.cli import interrupts  # noqa: E402
from ng_core.cli import preset_search as cli_preset_search  # noqa: E402
from ng_core.cli import report_html as cli_report_html  # noqa: E402
from ng_core.cli import sweep as cli_sweep  # noqa: E402
from ng_core.cli import tradeoff as cli_tradeoff  # noqa: E402
from ng_core.errors import NGError  # noqa: E402
from ng_core.evaluation.judge import judge  # noqa: E402
from ng_core.evaluation.leaks import find_leaks, usable_secrets  # noqa: E402
from ng_core.method.registry import EDIT, GATE_SCOPES, LEARNED, SCORE, methods, names  # noqa: E402
from ng_core.models.prompt_guard import check_prompt  # noqa: E402
from ng_core.progress import Progress, stderr_printer  # noqa: E402


def cmd_ask(args) -> int:
    from ng_core.method.bundle import Run  # deferred: torch
    from ng_core.method.interventions import (  # deferred: torch
        intervention_hooks,
        subject_positions,
    )
    from ng_core.models.image_processing import open_image  # deferred: torch

    # what can be checked without the model is checked first: a 7B checkpoint takes minutes to load
    check_prompt(args.prompt)
    image = open_image(args.image) if args.image else None
    run = Run.load(args.run) if args.run else None
    a = inputs.load_model(args)
    if run is not None:
        run.check_model(a)
    deltas = run.deltas() if run is not None else []
    feats = a.encode_image(image) if image is not None else None
    reading = a.read_image(image) if image is not None else None
    hooks = (lambda b: intervention_hooks(a, [], deltas, subject_positions(b))) if deltas else None
    g = a.generate([(feats, args.prompt, None, reading)], max_new_tokens=args.max_new_tokens, hooks_for=hooks,
                   do_sample=args.sample, seed=args.seed)[0]
    verdict = judge(g.text)
    secrets = [s for s in (args.secret or []) if s]
    leaks = find_leaks(g.text, secrets)
    if args.json:
        out = {"model": a.model_id, "image": args.image, "prompt": args.prompt, "answer": g.text,
               "run": args.run}
        out.update({"refused": verdict.refused, "matched": verdict.matched})
        if secrets:
            out.update({"leaked": bool(leaks), "leaks": leaks, "n_secrets": len(usable_secrets(secrets))})
        print(json.dumps(out))
    else:
        print(g.text)
        if secrets:
            print(f"leaked: {', '.join(leaks)}" if leaks else f"no private value in the answer "
                  f"({len(usable_secrets(secrets))} given)", file=sys.stderr)
    return 0


def cmd_localize(args) -> int:
    from ng_core.method.pipeline import localize_run  # deferred: torch
    from ng_core.method.presets import preset_json  # deferred: torch

    a, preset, layer, mask, _, recs = inputs.prepared(args)
    layers = [int(x) for x in str(args.layer).split(",")] if args.layer is not None else [layer]
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
    from ng_core.method.bundle import Run, check_out  # deferred: torch
    from ng_core.method.pipeline import edit_run  # deferred: torch
    from ng_core.method.presets import preset_json  # deferred: torch

    out = check_out(args.out)
    prev = Run.load(out) if (out / "run.json").exists() else None  # a broken run at --out: refused before the work
    a, preset, layer, mask, edit, recs = inputs.prepared(args)
    masks = None
    if prev is not None:
        prev.check_model(a)
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
    from ng_core.method.score_run import compute_scores  # deferred: torch
    from ng_core.method.scores import ScoreConfig

    a, _, _, mask, _, recs = inputs.prepared(args)
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
    from ng_core.method.bundle import list_runs  # deferred: torch

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
    from ng_core.method.presets import load_preset  # deferred: torch

    a = inputs.load_model(args)
    p = load_preset(a.model_id, a.n_layers)
    info = {"model": a.model_id, "source": a.source, "layers": a.n_layers, "hidden_size": a.hidden_size,
            "ffn_size": a.ffn_size, "parameters": a.n_parameters(), "image_tokens": a.n_image_tokens,
            "dtype": str(a.dtype), "fingerprint": a.fingerprint(), "preset": p["name"], "default_layer": p["layer"],
            **a.family_info()}
    print(json.dumps(info, indent=2))
    return 0


def cmd_presets(args) -> int:
    from ng_core.method.presets import (  # deferred: torch
        available,
        load_preset,
        preset_json,
    )

    if args.model:
        a = inputs.load_model(args)
        print(json.dumps(preset_json(load_preset(a.model_id, a.n_layers, override=args.preset)), indent=2))
        return 0
    for name, data in available().items():
        print(f"{name:22s} {data.get('description', '')}")
    for name, data in available("demo").items():  # `--preset demo` picks the one whose match fits the model
        print(f"{'demo (' + name + ')':22s} {data.get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ng", description="Neural Gate Studio: find, score, gate and edit privacy "
                                 "neurons in LLaVA-style vision-language models.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("ask", help="answer a question about an image", description="Answer a prompt about an "
                       "image with the model (greedy), optionally with a run's edit applied.")
    A.add_model(p, with_run=True)
    p.add_argument("--image", default=None, help="image file (png, jpg, webp); omit for a text-only prompt")
    p.add_argument("--prompt", required=True, help="the question")
    p.add_argument("--max-new-tokens", type=A.new_tokens, default=32,
                   help=f"answer length in tokens, 1..{A.MAX_NEW_TOKENS} (32)")
    p.add_argument("--sample", action="store_true", help="seeded sampling (top-p 0.9) instead of greedy")
    p.add_argument("--seed", type=A.seed, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--secret", action="append", metavar="VALUE",
                   help="a private value on the image (repeatable): an answer that spells it leaks it (said on "
                        "stderr; with --json, 'leaked'). Values under 4 letters or digits are ignored")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("localize", help="learn privacy-neuron masks (Stages A+B)",
                       description="Learn per-image neuron masks at the subject token and keep the neurons "
                       "flagged in more than --threshold of a category's images. Writes a run bundle.")
    A.add_model(p)
    A.add_data_args(p)
    p.add_argument("--layer", default=None, type=A.layers, help="layer(s), comma-separated (default: the model's preset)")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Adam steps per image (default 25)")
    p.add_argument("--privacy-value", type=A.finite_float, default=None, help="flag neurons with tanh(m) below this (0)")
    p.add_argument("--topk", type=A.open_fraction, default=None, help="flag the fraction of smallest m instead")
    p.add_argument("--threshold", type=A.fraction, default=None, help="consensus threshold, strict (0.3)")
    p.add_argument("--out", required=True, help="run bundle folder to write")
    p.set_defaults(func=cmd_localize, writes_run=True)

    p = sub.add_parser("edit", help="run a Neural Gate edit (or a baseline)",
                       description="Localize (unless OUT already holds masks), then fine-tune down_proj of the "
                       "layer with gradients gated to the privacy neurons. Writes a run bundle with the deltas.")
    A.add_model(p)
    A.add_data_args(p)
    p.add_argument("--layer", type=A.bounded_int(0, 9999), default=None, help="edited layer (default: the model's preset)")
    p.add_argument("--gate-scope", default=None, choices=list(GATE_SCOPES),
                   help="where the gradient gate acts (default: preset; the authors' code: subject_position)")
    p.add_argument("--method", dest="edit_method", default=None, choices=names(EDIT),
                   help=f"the edit method (default {LEARNED}): "
                        + "; ".join(f"{m.name}: {m.description}" for m in methods(EDIT)))
    p.add_argument("--lr", type=A.positive_float, default=None, help="Adam learning rate for down_proj (preset)")
    p.add_argument("--edit-steps", type=A.steps, default=None, help="steps per edit (10)")
    p.add_argument("--questions", type=A.bounded_int(1, 1000), default=None, help="paraphrases per image (5)")
    p.add_argument("--general-weight", type=A.nonneg_float, default=None,
                   help="weight of the general-question locality term (0 = the authors' loss; preset)")
    p.add_argument("--same-image", type=A.bounded_int(0, 100), default=None,
                   help="harmless questions about each edit's own image (what it is, its colour) kept answered "
                        "as before, per edit (0 = the authors' loss; preset)")
    p.add_argument("--benign-images", type=A.bounded_int(0, 100), default=None,
                   help="harmless questions about benign images drawn for the purpose (charts, landscapes) kept "
                        "answered as before, per edit (0 = none; preset)")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Stage A steps per image (25)")
    p.add_argument("--out", required=True, help="run bundle folder to write")
    p.set_defaults(func=cmd_edit, writes_run=True)

    p = sub.add_parser("scores", help="per-layer neuron privacy scores for heatmaps",
                       description="Score every neuron of every layer (residual dims and FFN neurons).")
    A.add_model(p)
    A.add_data_args(p)
    p.add_argument("--method", default="contrast", choices=names(SCORE),
                   help="mask (learned, joint over layers), gradxact (captum), contrast (paired Cohen's d)")
    p.add_argument("--position", default="subject", choices=["subject", "last"],
                   help="token scored: the subject's last token or the last prompt token")
    p.add_argument("--layers", default=None, type=A.layers, help="layers, comma-separated (default: all)")
    p.add_argument("--max-pairs", type=A.positive_int, default=None, help="cap on (sensitive, benign) prompt pairs")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Stage A steps for --method mask")
    p.add_argument("--out", required=True, help="run bundle folder to write")
    p.set_defaults(func=cmd_scores, writes_run=True)

    p = sub.add_parser("presets", help="list hyperparameter presets, or show the one a model gets",
                       description="Per-model hyperparameter presets (ng_core/method/presets/*.json). With --model, print "
                       "the resolved preset for that model as JSON.")
    A.add_model(p)
    p.add_argument("--preset", default=None, help="resolve this preset name or JSON file instead")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("runs", help="list run bundles", description="List the run bundles under a folder.")
    p.add_argument("root", nargs="?", default="runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("model", help="show (and build) a model", description="Load a model (assembling the "
                       "embedded default on first use) and print its shape, size, preset and fingerprint.")
    A.add_model(p)
    p.set_defaults(func=cmd_model_info)

    for group in (cli_data, cli_evaluate, cli_tradeoff, cli_report_html, cli_sweep, cli_preset_search):  # one module per command group
        group.register(sub)
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    n_before = interrupts.before(args)
    try:
        with interrupts.sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except NGError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a failed write: say which run --out holds now
        state = interrupts.out_state(args, n_before)
        print(f"error: {e}" + (f"; {state}" if state else ""), file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory; try smaller inputs (fewer images, a shorter prompt)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
        print(interrupts.message(args, n_before, e), file=sys.stderr)
        return interrupts.exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
