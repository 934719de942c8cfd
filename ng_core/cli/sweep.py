"""``ng sweep`` on the command line: flags -> :class:`~ng_core.evaluation.sweep_grid.SweepConfig` -> :func:`~ng_core.evaluation.sweep.run_sweep`."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ng_core.cli.args import MODEL_HELP, unknown_generated
from ng_core.evaluation.sweep_grid import (
    SweepConfig,
    SweepError,
    expand_grid,
    reduced_config,
)
from ng_core.method.registry import GATE_SCOPES, sweep_gates
from ng_core.models import load_model
from ng_core.progress import Progress, stderr_printer


def _csv(text: str, kind, what: str) -> tuple:
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(kind(x.strip()) for x in text.split(",") if x.strip())
    except ValueError:
        raise SweepError(f"--{what}: not a comma-separated list of {kind.__name__} values: {text!r}") from None


def register(sub) -> None:
    d = SweepConfig()
    p = sub.add_parser(
        "sweep", help="gate size x layer x scope sweep: learned vs random vs complement gate over seeds",
        description="Does localisation matter? For each setting (gate size: top-k share or consensus threshold; "
                    "edited layer; gate scope) run `ng report`'s Neural Gate, random-gate and complement-gate edits "
                    "over several seeds, evaluate them on held-out images, templates and categories, benign and "
                    "general questions, and report mean ± sd over seeds and learned − random against the seed "
                    "spread. Cases are divided into a validation part (used to choose a preset candidate) and an "
                    "evaluation part. Every stage is cached in --out: rerun the same command to resume. "
                    "--reduced: a grid sized for ng-mini-llava on a 2-core CPU; the full grid is meant for "
                    "--device cuda.")
    p.add_argument("--model", default=d.model, help=MODEL_HELP)
    p.add_argument("--reduced", action="store_true",
                   help="the reduced grid (top-k 1,5,20%% and consensus 0.3; 5 layers; the preset's scope; seeds "
                        "0,1,2; passport; 1 image, 2 questions, 10 steps at lr 3e-3, 8 mask steps; 1 image per "
                        "cell, validation/evaluation by question; 12 tokens); flags given too override it")
    p.add_argument("--data", default=None, help="dataset folder (default: generate one into OUT/data)")
    p.add_argument("--data-seed", type=int, default=None, help="seed of the generated dataset (0)")
    p.add_argument("--per-category", type=int, default=None, help="images per category of the generated dataset (20)")
    p.add_argument("--categories", default=None, help="edited categories, comma-separated")
    p.add_argument("--topk", default=None, help="top-k shares, comma-separated (0.01,0.02,0.05,0.1,0.2,0.4; none)")
    p.add_argument("--thresholds", default=None,
                   help="consensus thresholds of the sign rule tanh(m) < 0, comma-separated (0.3; none)")
    p.add_argument("--layers", default=None, help="edited layers, comma-separated (default: 5 across the depth + preset)")
    p.add_argument("--scopes", default=None, help="gate scopes, comma-separated: " + ", ".join(GATE_SCOPES) + " (preset's)")
    p.add_argument("--seeds", default=None, help="seeds, comma-separated (0,1,2)")
    p.add_argument("--design", default=None, choices=("axes", "full"),
                   help="axes: one factor at a time around the preset (default); full: every combination")
    p.add_argument("--max-images", type=int, default=None, help="train images per category per seed (preset)")
    p.add_argument("--questions", type=int, default=None, help="paraphrases per image in Stage C (preset)")
    p.add_argument("--edit-steps", type=int, default=None, help="Adam steps per edit (preset)")
    p.add_argument("--mask-steps", type=int, default=None, help="Stage A steps per image (preset)")
    p.add_argument("--lr", type=float, default=None, help="Stage C learning rate (preset)")
    p.add_argument("--images-per-cell", type=int, default=None,
                   help="evaluate the first N images per split and category (2; 0 = all)")
    p.add_argument("--holdout-by", default=None, choices=("image", "question"),
                   help="divide cases into validation / evaluation by image (default) or by question")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length (16)")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (8)")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="where the model runs (cpu)")
    p.add_argument("--no-general", action="store_true", help="do not ask the held-out general questions")
    p.add_argument("--out", default=None, help="sweep folder (out/sweep/<model>)")
    p.add_argument("--order", default="forward", choices=("forward", "reverse"),
                   help="reverse: a second `ng sweep` with the same flags takes the settings from the end "
                        "(two processes on one folder; each skips what the other holds)")
    p.add_argument("--render-only", action="store_true", help="aggregate and render what is cached; compute nothing")
    p.add_argument("--dry-run", action="store_true", help="print the settings and exit")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 per process is best on 2 cores)")
    p.set_defaults(func=cmd_sweep)


def config_from_args(args) -> SweepConfig:
    model = args.model
    cfg = reduced_config(model) if args.reduced else SweepConfig(model=model)
    kw: dict = {}
    for attr in ("data", "data_seed", "per_category", "design", "max_images", "questions", "edit_steps", "mask_steps",
                 "lr", "holdout_by", "max_new_tokens", "batch_size", "device"):
        v = getattr(args, attr)
        if v is not None:
            kw[attr] = v
    if args.images_per_cell is not None:
        kw["images_per_cell"] = args.images_per_cell or None
    for attr, kind in (("categories", str), ("topk", float), ("thresholds", float), ("layers", int),
                       ("scopes", str), ("seeds", int)):
        v = _csv(getattr(args, attr), kind, attr)
        if v is not None:
            kw[attr] = v or (None if attr in ("layers", "scopes") else ())
    if args.no_general:
        kw["general"] = False
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(model).name)
    kw["out"] = args.out or f"out/sweep/{safe}" + ("-reduced" if args.reduced else "")
    kw["order"], kw["render_only"] = args.order, args.render_only
    cfg = replace(cfg, **kw)
    if not cfg.categories:
        raise SweepError("--categories is empty")
    if msg := unknown_generated(cfg.categories, cfg.data):
        raise SweepError(msg)
    bad = [k for k in cfg.topk if not 0 < k <= 1] + [t for t in cfg.thresholds if not 0 <= t < 1]
    if bad:
        raise SweepError(f"top-k shares must be in (0, 1] and thresholds in [0, 1): {bad}")
    return cfg


def cmd_sweep(args) -> int:
    if args.threads:
        import torch  # deferred: torch, only with --threads (keeps ng --help fast)

        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    if args.dry_run:
        from ng_core.method.presets import load_preset  # deferred: torch, keeps ng --help fast

        a = load_model(cfg.model)
        settings = expand_grid(cfg, a.n_layers, load_preset(a.model_id, a.n_layers))
        print(cfg.command())
        for s in settings:
            print(s.label())
        n_gates = len(sweep_gates())
        print(f"{len(settings)} settings x {n_gates} gates x {len(cfg.seeds)} seeds = "
              f"{len(settings) * n_gates * len(cfg.seeds)} edits and evaluations (+ 1 unedited evaluation)")
        return 0
    from ng_core.evaluation.sweep import run_sweep  # deferred: torch, keeps ng --help fast

    res = run_sweep(cfg, Progress(stderr_printer(every=10.0)))
    print(res["choice"]["statement"])
    print(f"saved {Path(cfg.out) / 'sweep.json'}")
    return 0

