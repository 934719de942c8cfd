"""``ng preset-search`` on the command line: a grid of settings judged on the world set (validation, then test)."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from ng_core.cli import inputs
from ng_core.cli.args import MODEL_HELP
from ng_core.data import generate_dataset, load_dataset
from ng_core.evaluation.preset_search import GRIDS, PresetSearchError, SearchConfig, grid, preset_from_search, search


def register(sub) -> None:
    p = sub.add_parser(
        "preset-search", help="choose a preset on cards and questions no edit saw (world set: validation / test)",
        description="Train each candidate setting of a grid as `ng edit` does (generated train images, the "
                    "project's templates), then judge it by ground truth on the world set: held-out drawing "
                    "style, photographed cards and a held-out wording family. --part validation (default) chooses; "
                    "--part test reports the chosen (or --only) candidates on images and wordings the choice never "
                    "saw. Every edit and evaluation is cached in --out: rerun the same command to resume.")
    p.add_argument("--model", default="ng-mini-llava", help=MODEL_HELP)
    p.add_argument("--grid", default="default",
                   help=f"a shipped grid ({', '.join(GRIDS)}) or a JSON file with 'config' and 'candidates'")
    p.add_argument("--only", default=None, help="candidate names to run, comma-separated (default: all)")
    p.add_argument("--part", default="validation", choices=("validation", "test"))
    p.add_argument("--data", default=None, help="train dataset folder (default: generate one into OUT/data)")
    p.add_argument("--per-category", type=int, default=None, help="world-set images per category (3)")
    p.add_argument("--seeds", default=None, help="edit seeds, comma-separated (0)")
    p.add_argument("--controls", action="store_true", help="also run each candidate's random-gate control")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="edit-time budget of the choice (default: the grid's own, 60 s for the demo; 0: none). "
                        "Edit times are those measured during the search: on a shared machine pass 0 and time the "
                        "chosen preset quietly with `ng edit --preset ...`")
    p.add_argument("--out", required=True, help="folder for the cache and search.json")
    p.add_argument("--write-preset", default=None, metavar="FILE",
                   help="with --part test and one --only candidate: write a preset file for it, with its measured "
                        "numbers (test part; the validation numbers it was chosen on, when OUT has them)")
    p.add_argument("--evidence", default=None, help="where the search's files are kept, named in the preset")
    p.set_defaults(func=cmd_preset_search)


def cmd_preset_search(args) -> int:
    overrides, cands = grid(args.grid)
    if args.only:
        want = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in want if n not in {c.name for c in cands}]
        if unknown:
            raise PresetSearchError(f"--only: no candidate {', '.join(unknown)} in grid {args.grid}; it has: "
                                    f"{', '.join(c.name for c in cands)}")
        cands = [c for c in cands if c.name in want]
    if args.write_preset and (args.part != "test" or len(cands) != 1):
        raise PresetSearchError("--write-preset needs --part test and exactly one candidate (--only NAME)")
    cfg = replace(SearchConfig(), **overrides)
    if args.per_category is not None:
        cfg = replace(cfg, per_category=args.per_category)
    if args.seeds:
        try:
            cfg = replace(cfg, seeds=tuple(int(s) for s in args.seeds.split(",") if s.strip()))
        except ValueError:
            raise PresetSearchError(f"--seeds: not a comma-separated list of integers: {args.seeds!r}") from None
    cfg = replace(cfg, controls=bool(args.controls))
    if args.max_seconds is not None:
        if not args.max_seconds >= 0:
            raise PresetSearchError(f"--max-seconds must be 0 (no limit) or a positive number, not {args.max_seconds}")
        cfg = replace(cfg, max_seconds=args.max_seconds or None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch  # deferred: torch, only with --threads (keeps ng --help fast)

        torch.set_num_threads(args.threads)
    data = args.data
    if data is None:
        data = str(out / "data")
        if not (Path(data) / "dataset.json").is_file():
            generate_dataset(data, seed=cfg.data_seed, per_category=cfg.train_per_category,
                             categories=list(cfg.categories))
    dataset = load_dataset(data)
    args.reading = "auto"
    args.dtype = args.device_map = None
    adapter = inputs.load_model(args)
    res = search(adapter, cfg, cands, dataset, out, part=args.part)
    if args.write_preset:
        _write_preset(args, adapter, cfg, res, cands[0].name, out)
    print(json.dumps({"part": res["part"], "chosen": res["chosen"], "unedited": {
        k: res["unedited"].get(k) for k in ("leak_rate", "harmless_right", "general_answered")},
        "summaries": {n: {k: (v["mean"] if isinstance(v, dict) and "mean" in v else v) for k, v in s.items()
                          if k != "targets"} for n, s in res["summaries"].items()}}, indent=1))
    return 0


def _write_preset(args, adapter, cfg: SearchConfig, res: dict, name: str, out: Path) -> None:
    from ng_core.method.presets import available, preset_name  # deferred: torch, keeps ng --help fast

    method = "demo" if cfg.base == "demo" else "neural_gate"
    if cfg.base in (None, "demo"):
        base = available(method)[preset_name(adapter.model_id, method)]
    else:
        base = available()[cfg.base] if cfg.base in available() else json.loads(Path(cfg.base).read_text())
    val_path = out / "validation" / "search.json"
    validation = json.loads(val_path.read_text()) if val_path.is_file() else None
    command = "ng " + " ".join(sys.argv[1:])
    preset = preset_from_search(base, res, validation, name, args.evidence or str(out), command)
    Path(args.write_preset).write_text(json.dumps(preset, indent=2) + "\n")
    print(f"wrote {args.write_preset}", file=sys.stderr)
