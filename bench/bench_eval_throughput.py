"""Evaluation throughput: batched generation (left padding + KV cache) vs one-by-one, on the same cases.

Both schedules run the evaluation code path (``ng_core.evaluation.evaluate.generate_answers``) with greedy decoding;
images are encoded once beforehand and that time is reported separately, so the comparison isolates
batching. The answers of the two schedules must be identical (the script exits 1 otherwise).

    .venv/bin/python bench/bench_eval_throughput.py --model ng-mini-llava --data /tmp/ngdata \\
        --n 48 --batch-size 8 --max-new-tokens 24 --write BENCHMARKS.md

``--write`` replaces the "## Evaluation throughput" section of that Markdown file (created if missing) and
leaves every other section alone.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SECTION = "## Evaluation throughput"


def pick_cases(ds, split: str, n: int):
    """``n`` cases of ``split``, taken round-robin over categories (a realistic mix of prompt lengths)."""
    by_cat: dict = {}
    for c in ds.cases(split):
        by_cat.setdefault(c.category, []).append(c)
    out, k = [], 0
    while len(out) < n and any(k < len(v) for v in by_cat.values()):
        for v in by_cat.values():
            if k < len(v) and len(out) < n:
                out.append(v[k])
        k += 1
    return out


def run(args) -> dict:
    import torch

    from ng_core.data import generate_dataset, load_dataset
    from ng_core.evaluation.evaluate import Decoding, _Features, generate_answers
    from ng_core.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data
    if not data:
        data = str(Path(tempfile.mkdtemp(prefix="ng-bench-")) / "data")
        generate_dataset(data, seed=0, per_category=3)
    ds = load_dataset(data)
    cases = pick_cases(ds, args.split, args.n)
    if not cases:
        raise SystemExit(f"no cases in split {args.split!r} of {data}")
    t0 = time.monotonic()
    a = load_model(args.model)
    load_s = time.monotonic() - t0
    dec = Decoding(max_new_tokens=args.max_new_tokens)
    feats = _Features(a)
    t0 = time.monotonic()
    for c in cases:
        feats(c.image)
    enc_s = time.monotonic() - t0
    n_img = len(feats.cache)
    # warm-up (allocator, kernels) on a few cases, untimed
    generate_answers(a, cases[: min(2, len(cases))], batch_size=2, decoding=Decoding(max_new_tokens=2), feats=feats)

    def timed(bs):
        t = time.monotonic()
        gens = generate_answers(a, cases, batch_size=bs, decoding=dec, feats=feats, return_generations=True)
        return time.monotonic() - t, gens

    one_s, one = timed(1)
    bat_s, bat = timed(args.batch_size)
    same = [x.text == y.text for x, y in zip(one, bat)]
    toks = sum(len(g.token_ids) for g in bat)
    res = {
        "model": a.model_id, "fingerprint": a.fingerprint(), "cases": len(cases), "images": n_img,
        "split": args.split, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "generated_tokens": toks, "one_by_one_s": round(one_s, 2), "batched_s": round(bat_s, 2),
        "one_by_one_cases_per_s": round(len(cases) / one_s, 3), "batched_cases_per_s": round(len(cases) / bat_s, 3),
        "one_by_one_tokens_per_s": round(toks / one_s, 2), "batched_tokens_per_s": round(toks / bat_s, 2),
        "speedup": round(one_s / bat_s, 2), "identical_answers": all(same), "n_different": same.count(False),
        "image_encoding_s": round(enc_s, 2), "model_load_s": round(load_s, 1),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": _dt.date.today().isoformat(), "python": platform.python_version(), "torch": torch.__version__,
        "data": str(data), "data_seed": ds.info.get("seed"), "data_per_category": ds.info.get("per_category"),
    }
    if not all(same):
        res["examples"] = [{"prompt": cases[i].prompt, "one_by_one": one[i].text, "batched": bat[i].text}
                           for i, s in enumerate(same) if not s][:3]
    return res


def markdown(res: dict, command: str, machine: str, note: str = "") -> str:
    data = ""
    if res.get("data_seed") is not None:
        data = (f" Data: `ng data generate --out {res['data']} --seed {res['data_seed']} "
                f"--per-category {res['data_per_category']}`.")
    return "\n".join([
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; torch {res['torch']} with {res['threads']} threads; load average at the end "
        f"{res['load_average']}" + (" (above the bench's own threads: other work was running, so timings are "
                                    "noisy)" if res["load_average"][0] > res["threads"] + 0.5 else "") + ".  ",
        f"Date: {res['date']}.{data}",
        "",
        f"Same {res['cases']} cases ({res['split']}, {res['images']} images, round-robin over categories), greedy, "
        f"{res['max_new_tokens']} new tokens at most, model `{res['model']}` (fingerprint `{res['fingerprint']}`); "
        f"images encoded once beforehand ({res['image_encoding_s']} s, not in the timings).",
        "",
        "| Schedule | seconds | cases/s | generated tokens/s |",
        "|---|---|---|---|",
        f"| one by one (batch 1, KV cache) | {res['one_by_one_s']} | {res['one_by_one_cases_per_s']} | "
        f"{res['one_by_one_tokens_per_s']} |",
        f"| batched (batch {res['batch_size']}, left padding, KV cache, length-sorted) | {res['batched_s']} | "
        f"{res['batched_cases_per_s']} | {res['batched_tokens_per_s']} |",
        "",
        f"Speed-up: **{res['speedup']}×**. Identical answers: **{'yes' if res['identical_answers'] else 'no'}** "
        f"({res['cases'] - res['n_different']}/{res['cases']}).",
        "",
    ] + ([note, ""] if note else []))


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the evaluation-throughput section, keeping every other section."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    pat = re.compile(r"^## Evaluation throughput\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(old):
        new = pat.sub(lambda m: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--data", default=None, help="dataset folder (default: a small generated one)")
    ap.add_argument("--split", default="heldout_images")
    ap.add_argument("--n", type=int, default=48, help="number of cases (default 48)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--machine", default="2-core CPU", help="machine description for the Markdown section")
    ap.add_argument("--write", default=None, metavar="BENCHMARKS.md", help="update this Markdown file's section")
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    ap.add_argument("--from-json", default=None, help="render --write from a saved --json instead of measuring")
    ap.add_argument("--note", default="", help="a paragraph added under the numbers in the Markdown section")
    args = ap.parse_args(argv)
    res = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    if args.write:
        argv_ = list(argv if argv is not None else sys.argv[1:])
        keep, skip = [], False
        for a in argv_:
            if skip:
                skip = False
                continue
            if a == "--write":
                skip = True
                continue
            if not a.startswith("--write="):
                keep.append(a)
        cmd = ".venv/bin/python bench/bench_eval_throughput.py " + " ".join(keep)
        keep2, skip = [], False
        for a in keep:  # the rendering-only options are not part of the measuring command
            if skip:
                skip = False
                continue
            if a in ("--from-json", "--note", "--machine"):
                skip = True
                continue
            if not a.startswith(("--from-json=", "--note=", "--machine=")):
                keep2.append(a)
        cmd = ".venv/bin/python bench/bench_eval_throughput.py " + " ".join(keep2)
        write_section(Path(args.write), markdown(res, cmd.strip(), args.machine, args.note))
        print(f"updated {args.write}", file=sys.stderr)
    return 0 if res["identical_answers"] else 1


if __name__ == "__main__":
    sys.exit(main())
