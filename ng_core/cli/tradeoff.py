"""``ng tradeoff`` on the command line: flags -> :func:`ng_core.evaluation.tradeoff.tradeoff_curve` -> a JSON file.

Registered into ``ng`` by :func:`register`; the curve itself lives in the library.
"""
from __future__ import annotations

import sys

from ng_core.cli import args as A
from ng_core.cli import inputs
from ng_core.data import load_dataset
from ng_core.evaluation.tradeoff import PARAMS, save_tradeoff, tradeoff_curve
from ng_core.method.registry import EDIT, GATE_SCOPES, names
from ng_core.progress import Progress, stderr_printer


def cmd_tradeoff(args) -> int:
    inputs.check_data(args)  # before the model loads
    a = inputs.load_model(args)
    preset, layer, mask, edit = inputs.configs(args, a)
    recs = inputs.records(args, preset)
    ds = load_dataset(args.data, image_root=args.image_root)
    cases = list(ds.cases(args.eval_split, categories=sorted(recs)))
    if args.n_cases:
        cases = [c for c in cases if c.expect == "refuse"][:args.n_cases] + \
                [c for c in cases if c.expect == "answer"][:args.n_cases]
    values = [x.strip() for x in args.values.split(",") if x.strip()] if args.values else None
    res = tradeoff_curve(a, recs, layer, cases, param=args.param, values=values, mask_cfg=mask, edit_cfg=edit,
                         control=not args.no_control, seed=args.seed, max_new_tokens=args.max_new_tokens,
                         progress=Progress(stderr_printer()))
    save_tradeoff(res, args.out)
    if res["baseline"]:
        b = res["baseline"]
        print(f"unedited: refusal {b['refusal_rate']:.2f}, benign answers {b['benign_answer_rate']:.2f}")
    for p in res["points"]:
        print(f"{args.param}={p['value']:g} {p['method']}: refusal {p['refusal_rate']:.2f} "
              f"({p['n_refuse']} cases), benign answers {p['benign_answer_rate']:.2f} ({p['n_answer']} cases), "
              f"gate leak {p['gate_leak']:.3f}")
    print(f"saved {args.out}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("tradeoff", help="refusal vs benign answers over lr or steps (learned vs random gate)",
                       description="Localize once, then edit once per value of --param (reusing the masks), also "
                       "with a random gate of the same size unless --no-control, and evaluate each edit on the "
                       "held-out cases of the same categories. Writes JSON points {value, method, refusal_rate, "
                       "benign_answer_rate, n_refuse, n_answer, gate_leak} and the unedited baseline.")
    A.add_model(p)
    A.add_data_args(p)
    p.add_argument("--layer", type=A.bounded_int(0, 100_000), default=None, help="edited layer (default: the model's preset)")
    p.add_argument("--param", default="lr", choices=PARAMS, help="the swept hyperparameter (default lr)")
    p.add_argument("--values", default=None,
                   help="comma-separated values (default: 3 around the preset: lr x1/3,1,3 or steps /2,x1,x2)")
    p.add_argument("--no-control", action="store_true", help="skip the random-gate control")
    p.add_argument("--eval-split", default="heldout_images", help="split of the evaluation cases (heldout_images)")
    p.add_argument("--n-cases", type=A.positive_int, default=None, help="privacy and benign cases each (default: all)")
    p.add_argument("--max-new-tokens", type=A.new_tokens, default=32)
    p.add_argument("--gate-scope", default=None, choices=list(GATE_SCOPES))
    p.add_argument("--method", dest="edit_method", default=None, choices=names(EDIT))
    p.add_argument("--lr", type=A.positive_float, default=None, help="learning rate when sweeping steps (preset)")
    p.add_argument("--edit-steps", type=A.steps, default=None, help="steps per edit when sweeping lr (preset)")
    p.add_argument("--questions", type=A.positive_int, default=None, help="paraphrases per image (preset)")
    p.add_argument("--mask-steps", type=A.steps, default=None, help="Stage A steps per image (preset)")
    p.add_argument("--topk", type=A.open_fraction, default=None, help="flag the fraction of smallest m instead")
    p.add_argument("--out", required=True, type=A.out_file, help="JSON file to write")
    p.set_defaults(func=cmd_tradeoff)
