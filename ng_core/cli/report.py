"""``ng report`` on the command line: flags -> :class:`~ng_core.evaluation.report_config.ReportConfig` -> RESULTS.md.

Registered into ``ng`` by :func:`ng_core.cli.evaluate.register`; the report itself lives in the library
(:func:`ng_core.evaluation.report_runner.run_report`).
"""
from __future__ import annotations

from ng_core.cli.args import MODEL_HELP, unknown_generated
from ng_core.evaluation.report_config import ReportConfig, ReportError, check_methods
from ng_core.evaluation.report_render import target_lines
from ng_core.method.registry import EDIT, GATE_SCOPES, methods, report_methods
from ng_core.progress import Progress, stderr_printer


def register_report(sub) -> None:
    d = ReportConfig()
    p = sub.add_parser(
        "report", help="run the method matrix and write RESULTS.md",
        description="Edit with Neural Gate and the baselines (same layer, data and budget), evaluate every method "
                    "on the same cases (edited prompts, held-out images, held-out templates, unseen categories, "
                    "benign controls, utility probe) and write one Markdown report with the command, machine, "
                    "date and runtime. Edit runs and results are cached in --workdir.")
    p.add_argument("--model", default=d.model, help=MODEL_HELP)
    p.add_argument("--data", default=None, help="dataset folder (default: generate one into WORKDIR/data)")
    p.add_argument("--data-seed", type=int, default=d.data_seed, help="seed of the generated dataset (0)")
    p.add_argument("--per-category", type=int, default=d.per_category,
                   help="images per category of the generated dataset (20)")
    p.add_argument("--categories", default=",".join(d.categories), help="edited categories, comma-separated")
    p.add_argument("--methods", default=",".join(d.methods), help="methods, comma-separated: " + ", ".join(report_methods()))
    p.add_argument("--layer", type=int, default=None, help="edited layer (default: the model's preset)")
    p.add_argument("--max-images", type=int, default=None, help="train images per category used for editing (preset)")
    p.add_argument("--questions", type=int, default=None, help="paraphrases per image in Stage C (preset)")
    p.add_argument("--edit-steps", type=int, default=None, help="Adam steps per edit (preset)")
    p.add_argument("--mask-steps", type=int, default=None, help="Stage A steps per image (preset)")
    p.add_argument("--lr", type=float, default=None, help="Stage C learning rate (preset)")
    p.add_argument("--gate-scope", default=None, choices=list(GATE_SCOPES),
                   help="Stage C gradient-gate scope (preset)")
    p.add_argument("--images-per-cell", type=int, default=None,
                   help="evaluate only the first N images per split and category (default: all)")
    p.add_argument("--probe-per-category", type=int, default=d.probe_per_category,
                   help="images per category in the utility probe's type question (1)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="answer length (24)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="evaluation batch size (8)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the edits and the random gate (0)")
    p.add_argument("--seeds", default="", help="extra seeds, comma-separated: Neural Gate and its random-gate control "
                   "again per seed, each on a seeded sample of the train images (learned vs random over seeds)")
    p.add_argument("--sweep-lr", default="", help="extra Stage C learning rates, comma-separated: Neural Gate and the "
                   "random gate at each, with the same masks (the refusal vs benign-answer trade-off curve)")
    p.add_argument("--seed-controls", default=",".join(d.seed_controls),
                   help="controls rerun at each extra seed, comma-separated: "
                        + ", ".join(m.name for m in methods(EDIT) if m.control))
    p.add_argument("--topk", type=float, default=None,
                   help="Stage B: flag this fraction of smallest m per image instead of tanh(m) < 0 (preset)")
    p.add_argument("--threshold", type=float, default=None, help="Stage B consensus threshold, strict (preset)")
    p.add_argument("--device-map", default=None, help="accelerate device map of the model, e.g. cuda (default: CPU)")
    p.add_argument("--no-general", action="store_true", help="do not ask the held-out general questions")
    p.add_argument("--order", default="forward", choices=("forward", "reverse"),
                   help="order of the stages; start a second `ng report` with the same settings and --order reverse "
                        "on the same --workdir to use two processes (each reuses what the other finished)")
    p.add_argument("--workdir", default=d.workdir, help="cache of runs and per-method results (out/report)")
    p.add_argument("--out", default=d.out, help="Markdown file to write (RESULTS.md)")
    p.add_argument("--note", default="", help="a paragraph to put under the command (e.g. why a setting is reduced)")
    p.add_argument("--fresh", action="store_true", help="recompute everything instead of reusing the cache")
    p.add_argument("--render-only", action="store_true",
                   help="write the report from the cache only (e.g. while a long run is still going); "
                        "methods not computed yet are left out")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is faster on a machine shared with other jobs)")
    p.set_defaults(func=cmd_report)


def _csv(text: str, kind) -> tuple:
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise ReportError(f"not a comma-separated list of {kind.__name__} values: {text!r}") from e


def cmd_report(args) -> int:
    if args.threads:
        import torch  # deferred: torch, only with --threads (keeps ng --help fast)

        torch.set_num_threads(args.threads)
    cats = tuple(c.strip() for c in args.categories.split(",") if c.strip())
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    cfg = ReportConfig(model=args.model, data=args.data, data_seed=args.data_seed, per_category=args.per_category,
                       categories=cats, methods=methods, layer=args.layer, max_images=args.max_images,
                       questions=args.questions, edit_steps=args.edit_steps, mask_steps=args.mask_steps, lr=args.lr,
                       gate_scope=args.gate_scope, images_per_cell=args.images_per_cell,
                       probe_per_category=args.probe_per_category, max_new_tokens=args.max_new_tokens,
                       batch_size=args.batch_size, seed=args.seed, workdir=args.workdir, out=args.out,
                       seeds=_csv(args.seeds, int), seed_controls=_csv(args.seed_controls, str),
                       topk=args.topk, threshold=args.threshold, device_map=args.device_map,
                       sweep_lrs=_csv(args.sweep_lr, float), general=not args.no_general,
                       order=args.order,
                       fresh=args.fresh, note=args.note, render_only=args.render_only)
    if not cats:
        raise ReportError("--categories is empty")
    if msg := unknown_generated(cats, args.data):
        raise ReportError(msg)
    check_methods(methods)
    from ng_core.evaluation.report_runner import run_report  # deferred: torch, keeps ng --help fast

    out = run_report(cfg, Progress(stderr_printer(every=5.0)))
    for line in target_lines(out["summary"], out["results"], cfg):
        print(line)
    print(f"saved {out['path']}")
    return 0
