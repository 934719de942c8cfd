"""``ng evaluate``, ``ng report`` and ``ng judge``: registered into the main CLI by :func:`register`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ng_core.cli import args as A
from ng_core.cli import inputs
from ng_core.cli.report import register_report
from ng_core.data import load_dataset, read_cases_jsonl
from ng_core.data.constants import SPLITS
from ng_core.errors import NGError
from ng_core.evaluation.judge import JudgeConfig, default_config_json, judge
from ng_core.method.registry import BASELINE, EDIT, EVALUATION, LEARNED, MAY, NEEDS, find_method, methods, names
from ng_core.progress import Progress, stderr_printer


class EvaluationError(NGError):
    """Bad input to an evaluation (cases, method, run) with a message meant for a person."""


def method_choices() -> tuple[str, ...]:
    """``ng evaluate --method``: the evaluations without a weight edit, then the edit methods."""
    return names(EVALUATION) + names(EDIT)


def method_help() -> str:
    return ("; ".join(f"{m.name}: {m.description}" for m in methods(EVALUATION))
            + f"; {', '.join(names(EDIT))}: same as edited, checking that the run was made with that method. "
            "Default: edited with --run, unedited without")


def _add_decoding(p):
    p.add_argument("--batch-size", type=A.positive_int, default=8, help="rows generated together (left padding, KV cache); "
                   "1 = one by one (default 8)")
    p.add_argument("--max-new-tokens", type=A.new_tokens, default=32, help="answer length cap in tokens (default 32)")
    p.add_argument("--sample", action="store_true", help="seeded sampling (top-p) instead of greedy decoding")
    p.add_argument("--seed", type=A.seed, default=0, help="sampling seed (with --sample; default 0)")
    p.add_argument("--temperature", type=A.positive_float, default=1.0, help="sampling temperature (with --sample)")
    p.add_argument("--top-p", type=A.open_fraction, default=0.9, help="nucleus mass (with --sample; default 0.9)")
    p.add_argument("--repetition-penalty", type=A.positive_float, default=1.0,
                   help="CTRL-style repetition penalty (the authors used 1.05 with sampling; default 1.0)")
    p.add_argument("--judge-config", default=None, metavar="JSON",
                   help="refusal judge keyword overrides (see `ng judge --dump-config`)")


def _decoding(args):
    from ng_core.evaluation.evaluate import Decoding  # deferred: torch

    if args.batch_size < 1:
        raise EvaluationError("--batch-size must be at least 1")
    if args.max_new_tokens < 1:
        raise EvaluationError("--max-new-tokens must be at least 1")
    return Decoding(max_new_tokens=args.max_new_tokens, do_sample=args.sample, temperature=args.temperature,
                    top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed)


def _load_cases(args):
    if args.cases:
        path = Path(args.cases)
        if not path.is_file():
            raise EvaluationError(f"cases file not found: {path}")
        cases = read_cases_jsonl(path)
        base = path.parent
    else:
        ds = load_dataset(args.data, image_root=args.image_root)
        cats = [c.strip() for c in args.category.split(",") if c.strip()] if args.category else None
        split = None if args.split in (None, "all") else args.split
        cases = ds.cases(split, categories=cats)
        base = ds.root
    if args.limit is not None:
        cases = cases[: args.limit]
    if not cases:
        raise EvaluationError("no cases to evaluate (empty file, or no cases for that split/category)")
    return cases, base


def resolve_method(method: str | None, run_path, adapter):
    """(method label, deltas, gates, run) for the CLI's --method/--run pair, with clear errors. Gates None: the
    method needs gates from the run's masks, which the caller builds (its scale options)."""
    from ng_core.method.bundle import Run  # deferred: torch

    method = method or ("edited" if run_path else BASELINE)
    m = find_method(method)
    if m is None or m.kind not in (EVALUATION, EDIT):
        raise EvaluationError(f"unknown --method {method!r}; use one of {', '.join(method_choices())}")
    run = Run.load(run_path, adapter) if run_path else None
    deltas, gates = [], []
    if not m.takes_run:
        if run is not None:
            raise EvaluationError(f"--method {method} takes no --run (drop --run, or use --method edited)")
    elif m.takes_gates == NEEDS:
        if run is None:
            raise EvaluationError(f"--method {method} needs --run: a localize or edit run with masks")
        return method, deltas, None, run  # gates built by the caller (scale options)
    elif m.takes_deltas == MAY:  # the run's edit, when given, is applied too
        if run is not None:
            deltas = run.deltas()
    else:  # the deltas of an edit run: edited or an edit method
        if run is None:
            raise EvaluationError(f"--method {method} needs --run: an edit run folder (ng edit --out RUN)")
        deltas = run.deltas()
        if not deltas:
            raise EvaluationError(f"{run_path} holds no weight edit (kind {run.kind!r}); "
                                  "for a localize run use --method inference_gate")
        made = (run.config.get("edit") or {}).get("method", LEARNED)
        if m.edits and method != made:
            raise EvaluationError(f"{run_path} was made with --method {made}, not {method}")
        method = made
    return method, deltas, gates, run


def cmd_evaluate(args) -> int:
    from ng_core.evaluation.baselines import inference_gates  # deferred: torch
    from ng_core.evaluation.evaluate import evaluate_cases  # deferred: torch

    dec = _decoding(args)
    jcfg = JudgeConfig.from_json(args.judge_config) if args.judge_config else None
    cases, base = _load_cases(args)
    pre = None
    if args.pre:
        try:
            pre = json.loads(Path(args.pre).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EvaluationError(f"cannot read --pre {args.pre}: {e}") from None
        if not isinstance(pre, dict) or "cases" not in pre:
            raise EvaluationError(f"--pre {args.pre} is not an `ng evaluate` result")
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise EvaluationError(f"--out {out} is a folder; give a file name such as result.json")
    a = inputs.load_model(args)
    method, deltas, gates, run = resolve_method(args.method, args.run, a)
    if gates is None:  # the method gates the run's learned neurons
        scale = args.gate_scale if args.gate_scale in ("learned", "zero") else _float(args.gate_scale)
        gates = inference_gates(run, layer=args.gate_layer, scale=scale, where=args.gate_where)
        if not gates:
            raise EvaluationError(f"{args.run} selects no neurons to gate")
    if pre is not None and pre.get("model", {}).get("fingerprint") not in (None, a.fingerprint()):
        raise EvaluationError(f"--pre {args.pre} was computed on another model ({pre['model'].get('id')})")
    sp = Path(args.system_prompt_file).read_text() if args.system_prompt_file else None
    t0 = time.monotonic()
    res = evaluate_cases(a, cases, deltas=deltas, gates=gates, method=method, batch_size=args.batch_size,
                         decoding=dec, judge_config=jcfg, progress=Progress(stderr_printer()), pre_answers=pre,
                         nll=not args.no_nll, locality=not args.no_locality, system_prompt=sp,
                         run=str(args.run) if args.run else None, image_base=base,
                         refusal_target=args.refusal_target)
    secs = time.monotonic() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"evaluated {res['n']} cases in {secs:.1f} s ({res['n'] / max(secs, 1e-9):.2f} cases/s)", file=sys.stderr)
    print(format_summary(res))
    print(f"saved {out}")
    return 0


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        raise EvaluationError(f"--gate-scale must be 'learned', 'zero' or a number, not {v!r}") from None


def _pct(x):
    return "-" if x is None else f"{100 * x:5.1f}%"


def _leak(m: dict) -> str:
    """The exact leak rate with its n ("12.5% of 8"), or "n/a" when no privacy case has secrets."""
    if not m.get("n_secret") or m.get("leak_rate") is None:
        return "n/a"
    return f"{_pct(m['leak_rate']).strip()} of {m['n_secret']}"


def format_summary(res: dict) -> str:
    """A short plain-text table of a result: per split, the exact leak rate first, then refusal / answer rates
    (keyword judge) and locality."""
    lines = [f"{res['model']['id']}  method={res['method']}  n={res['n']}",
             (f"{'split':<20}{'n':>5} {'leaked':>13} {'refuse':>8} {'answer':>8} {'kw-leak':>8} {'agree':>7} "
             f"{'dNLL':>8}")]
    for s, m in list(res["by_split"].items()) + [("all", res["overall"])]:
        dn = "-" if m.get("d_nll") is None else f"{m['d_nll']:+.3f}"
        kw = m.get("refusal_leak_rate", m.get("leak_rate") if "n_secret" not in m else None)
        lines.append(f"{s:<20}{m['n']:>5} {_leak(m):>13} {_pct(m['refusal_rate']):>8} {_pct(m['answer_rate']):>8} "
                     f"{_pct(kw):>8} {_pct(m['locality_agreement']):>7} {dn:>8}")
    if res.get("accuracy") is not None:
        lines.append(f"utility probe accuracy: {_pct(res['accuracy'])}")
    if res["overall"].get("garbled_rate"):
        lines.append(f"garbled: {_pct(res['overall']['garbled_rate']).strip()} of all answers are degenerate "
                     "(repetition, no letters, non-words); they count as neither refused nor answered")
    if not res["overall"].get("n_secret"):
        lines.append("leaked: n/a (these cases carry no ground-truth secrets; regenerate the dataset and export "
                     "the cases again to measure exact leaks)")
    else:
        lines.append("leaked: privacy answers holding a true private value of their image (exact, normalised); "
                     "refuse/answer: keyword judge; kw-leak: refusals followed by private-looking text")
    return "\n".join(lines)


def cmd_judge(args) -> int:
    if args.dump_config:
        print(default_config_json())
        return 0
    if not args.text:
        raise EvaluationError("give the text to judge (or --dump-config)")
    cfg = JudgeConfig.from_json(args.config) if args.config else None
    for t in args.text:
        v = judge(t, cfg)
        print(json.dumps({"text": t} | v.to_dict(), ensure_ascii=False))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="answer and judge a set of cases; refusal, answer, locality metrics",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate an answer for every case (greedy unless --sample; batched with left padding and a "
                    "KV cache), judge refusals with the keyword judge, and write RESULT.json with per-case "
                    "answers and metrics per split and category.\n\n"
                    "CASES.jsonl lines: {\"image\": path, \"prompt\": text, \"expect\": \"refuse\"|\"answer\", ...}; "
                    "image paths are relative to the file's folder; \"secrets\" (the true private values on the "
                    "image, from `ng data cases`) give the exact leak rate; other keys (category, split, subject, "
                    "expected, target, ...) are kept. RESULT.json holds n, leak_rate_on_refuse (exact, with "
                    "n_secret; null without secrets), refusal_rate_on_refuse, answer_rate_on_answer, "
                    "refusal_leak_rate_on_refuse (keyword), locality_agreement, d_nll, margin, efficacy, "
                    "by_split, by_category, by_split_category and cases (answer, refused, matched phrase, "
                    "leaked, leaks, ...).",
        epilog="examples:\n"
               "  ng data cases --data data/pp --split heldout_images --out heldout.jsonl\n"
               "  ng evaluate --cases heldout.jsonl --out before.json\n"
               "  ng evaluate --cases heldout.jsonl --run runs/ng --pre before.json --out after.json\n"
               "  ng evaluate --data data/pp --split benign_controls --method system_prompt --out sp.json")
    A.add_model(p, with_run=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cases", help="cases file (JSON Lines; see above)")
    src.add_argument("--data", help="a dataset folder instead of --cases (with --split/--category)")
    p.add_argument("--split", default="all", choices=("all",) + tuple(SPLITS), help="with --data: the split (all)")
    p.add_argument("--category", default=None, help="with --data: categories, comma-separated (all)")
    p.add_argument("--image-root", default=None, help="with --data: image root for paper-format datasets")
    p.add_argument("--limit", type=A.positive_int, default=None, help="evaluate only the first N cases")
    p.add_argument("--method", default=None, choices=method_choices(), help=method_help())
    p.add_argument("--gate-scale", default="learned",
                   help="inference_gate: 'learned' (tanh of the learned m, default), 'zero' (ablate), or a number")
    p.add_argument("--gate-where", default="subject", choices=("subject", "all"),
                   help="inference_gate: gate at the subject token (default) or every position")
    p.add_argument("--gate-layer", type=A.bounded_int(0, 100_000), default=None, help="inference_gate: the masked layer (the run's)")
    p.add_argument("--system-prompt-file", default=None,
                   help="system_prompt: a file with the text to prepend (default: the authors' in-context prompt)")
    p.add_argument("--pre", default=None, metavar="RESULT.json",
                   help="the unedited model's result on the same cases (locality reference); without it the "
                        "unedited answers are generated too")
    p.add_argument("--no-locality", action="store_true", help="skip locality (no unedited answers needed)")
    p.add_argument("--no-nll", action="store_true", help="skip the NLL margins and locality dNLL (faster)")
    p.add_argument("--refusal-target", default="I cannot",
                   help="refusal text scored by the NLL margin when a case has no 'target' key (default 'I cannot')")
    _add_decoding(p)
    p.add_argument("--out", required=True, type=A.out_file, help="result JSON file to write")
    p.set_defaults(func=cmd_evaluate)

    register_report(sub)

    p = sub.add_parser("judge", help="judge texts as refusals (keyword judge)",
                       description="Print the refusal verdict (refused, matched phrase, leak) for each TEXT, or the "
                                   "default keyword configuration with --dump-config (edit it and pass it with "
                                   "--config or `ng evaluate --judge-config`).")
    p.add_argument("text", nargs="*", help="answers to judge")
    p.add_argument("--config", default=None, metavar="JSON", help="judge configuration overrides")
    p.add_argument("--dump-config", action="store_true", help="print the default configuration as JSON")
    p.set_defaults(func=cmd_judge)
