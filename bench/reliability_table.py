"""Count the reliability suite's outcomes by class: the README's "Reliability" table.

    python bench/reliability_table.py            # the markdown table
    python bench/reliability_table.py --details  # and one line per case that is not clear/ok

It runs exactly the cases of ``tests/test_reliability.py`` (tiny-random model, CPU, under a minute).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

LABELS = {"clear": "clear error", "ok": "handled correctly", "crash": "crash / traceback / hang",
          "wrong": "silently wrong", "lost": "data lost"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--details", action="store_true", help="list every case that is not clear/ok")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from reliability_cases import all_cases
    from reliability_core import OUTCOMES, Ctx, classify

    cases = all_cases()
    ctx = Ctx()
    t0 = time.monotonic()
    by_group: dict = defaultdict(Counter)
    bad = []
    try:
        for c in cases:
            outcome, detail = classify(c, ctx)
            by_group[c.group][outcome] += 1
            if outcome not in ("clear", "ok"):
                bad.append(f"{c.id}: {outcome}: {detail}")
    finally:
        ctx.close()
    total = Counter()
    for g in by_group.values():
        total.update(g)
    print("| class | cases | " + " | ".join(LABELS[o] for o in OUTCOMES) + " |")
    print("|---|---:|" + "---:|" * len(OUTCOMES))
    for group in sorted(by_group):
        cnt = by_group[group]
        print(f"| {group} | {sum(cnt.values())} | " + " | ".join(str(cnt[o]) for o in OUTCOMES) + " |")
    print(f"| **all** | **{sum(total.values())}** | " + " | ".join(f"**{total[o]}**" for o in OUTCOMES) + " |")
    print(f"\n{len(cases)} cases in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    if args.details:
        for line in bad:
            print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
