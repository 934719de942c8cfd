"""The ``ng data`` command: ``generate``, ``cases`` and ``info``.

The main CLI calls :func:`register` with its sub-parsers; each leaf parser sets ``func=handler`` where
``handler(args) -> int`` is the exit code. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import sys
import time

from ng_core.cli import args as A
from ng_core.errors import NGError
from ng_core.data.cases import write_cases_jsonl
from ng_core.data.constants import ALL_CATEGORIES, SPLIT_DESCRIPTIONS, SPLITS
from ng_core.data.generate import generate_dataset
from ng_core.data.loaders import load_dataset, load_project_dataset

_SPLIT_HELP = "; ".join(f"{s}: {d}" for s, d in SPLIT_DESCRIPTIONS.items())


def _stderr_progress(quiet: bool):
    last = [0.0]

    tty = sys.stderr.isatty()

    def progress(done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if quiet or (now - last[0] < (0.3 if tty else 2.0) and done < total):
            return
        last[0] = now
        line = f"[{done}/{total}] {message}"
        if tty:
            print("\r" + line.ljust(60), end="\n" if done == total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return progress


def _generate(args) -> int:
    t0 = time.monotonic()
    try:
        out = generate_dataset(args.out, seed=args.seed, per_category=args.per_category,
                               categories=args.categories or None, progress=_stderr_progress(args.quiet),
                               family=args.family)
        ds = load_project_dataset(out)
    except NGError as e:
        print(f"ng data generate: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    _print_stats(ds, sys.stderr)
    return 0


def _print_stats(ds, stream) -> None:
    print(f"categories: {', '.join(ds.categories)}", file=stream)
    for split, st in ds.split_stats().items():
        print(f"  {split:<18} {st['images']:>4} images  {st['refuse']:>5} refuse  {st['answer']:>5} answer",
              file=stream)


def _load(args):
    return load_dataset(args.data, image_root=args.image_root, format=args.format,
                        check_images=not args.no_check_images)


def _cases(args) -> int:
    try:
        ds = _load(args)
        split = None if args.split == "all" else args.split
        cases = ds.cases(split, categories=args.category or None)
        if not cases:
            have = ", ".join(ds.splits) or "none"
            print(f"ng data cases: error: no cases for split {args.split!r}"
                  + (f" and categories {args.category}" if args.category else "")
                  + f" in {args.data} (its splits: {have})", file=sys.stderr)
            return 1
        out = write_cases_jsonl(cases, args.out, relative=not args.absolute)
    except NGError as e:
        print(f"ng data cases: error: {e}", file=sys.stderr)
        return 2
    n_ref = sum(c.expect == "refuse" for c in cases)
    n_sec = sum(bool(c.secrets) for c in cases)
    print(f"wrote {len(cases)} cases ({n_ref} refuse, {len(cases) - n_ref} answer"
          + (f"; {n_sec} with the image's true private values, for the leak rate" if n_sec else "")
          + f") to {out}", file=sys.stderr)
    return 0


def _info(args) -> int:
    try:
        ds = _load(args)
    except NGError as e:
        print(f"ng data info: error: {e}", file=sys.stderr)
        return 2
    print(f"{ds.root} ({ds.format} format)")
    _print_stats(ds, sys.stdout)
    return 0


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="PATH",
                   help="a dataset folder made by `ng data generate`, a folder (or file) of the paper's "
                        "neural_gate_*.json, or Multi-P2A leakage JSON(s) (folder or file)")
    p.add_argument("--image-root", metavar="DIR", default=None,
                   help="folder the image paths of the paper's or Multi-P2A's files are relative to "
                        "(default: the folder of the JSON files; not used for the project's own folders)")
    p.add_argument("--format", choices=("auto", "project", "paper", "multi_p2a"), default="auto",
                   help="format of --data (default: auto-detect)")
    p.add_argument("--no-check-images", action="store_true",
                   help="do not fail when images are missing (the cases still name them)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` command (with ``generate``, ``cases`` and ``info``) to an argparse sub-parsers object."""
    data = subparsers.add_parser(
        "data", help="generate the synthetic PrivacyPair dataset and export evaluation cases",
        description="Synthetic privacy images with paired privacy (refuse) and benign (answer) questions, "
                    "in the paper's JSON schema, with held-out splits. Splits: " + _SPLIT_HELP + ".")
    sub = data.add_subparsers(dest="data_command", metavar="{generate,cases,info}")
    sub.required = True

    g = sub.add_parser(
        "generate", help="generate a dataset folder (images + prompts)",
        description="Draw fake private documents (passport, phone number, receipt, student ID, document, "
                    "military vehicle; unseen: credit card, driver's license; benign: chart, scene) and write "
                    "their prompts in the paper's neural_gate_<category>.json schema. The same seed gives "
                    "byte-identical files. About 10 s for 10 categories x 20 images on 2 CPU cores.")
    g.add_argument("--out", required=True, metavar="DATA",
                   help="output folder (created; a previous dataset there is replaced, other files are kept)")
    g.add_argument("--seed", type=A.seed, default=0, metavar="S", help="random seed (default: 0)")
    g.add_argument("--per-category", type=A.positive_int, default=20, metavar="N",
                   help="images per category (default: 20; about 1/3 of a paper category's images are train)")
    g.add_argument("--categories", nargs="+", choices=ALL_CATEGORIES, default=None, metavar="CAT",
                   help="categories to generate (default: all): " + ", ".join(ALL_CATEGORIES))
    g.add_argument("--family", choices=("main", "heldout"), default="main",
                   help="rendering family: main (default) or heldout (a separately written style, other image "
                        "seeds, for validation only)")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")
    g.set_defaults(func=_generate)

    c = sub.add_parser(
        "cases", help="export the evaluation cases of one split as JSON Lines",
        description="Write one JSON object a line: {image, prompt, expect: refuse|answer, category, subject, "
                    "split, secrets, ...}, the format `ng evaluate` reads; secrets (the true private values "
                    "drawn on the image, when the dataset records them) give the exact leak rate. Image paths "
                    "are relative to the output file's folder. Splits: " + _SPLIT_HELP + ".")
    _add_source_args(c)
    c.add_argument("--split", required=True, choices=SPLITS + ("all",), metavar="SPLIT",
                   help="split to export: " + ", ".join(SPLITS) + ", or all")
    c.add_argument("--category", nargs="+", action="extend", default=None, metavar="CAT",
                   help="only these category ids (repeatable)")
    c.add_argument("--out", required=True, type=A.out_file, metavar="CASES.jsonl", help="output file")
    c.add_argument("--absolute", action="store_true", help="write absolute image paths")
    c.set_defaults(func=_cases)

    i = sub.add_parser("info", help="show a dataset's categories and split sizes",
                       description="Load a dataset (any supported format) and print its categories and the "
                                   "number of images and refuse/answer prompts per split.")
    _add_source_args(i)
    i.set_defaults(func=_info)
    return data
