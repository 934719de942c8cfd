"""Are the learned rows one category's, or rows any privacy edit picks? Rows shared within and across categories.

Why: in the sweeps the learned gates of one category share far more rows across train images than random
ones (``ng sweep``'s consistency table). That alone does not say the rows carry *that* category's concept:
Stage A could pick the same generally influential rows for any document. This compares, at the same layer
and gate size, the rows shared by two gates of one category (different train images) with the rows shared
by a gate of one category and a gate of another. Reads the cells' run bundles only; computes nothing new.

    .venv/bin/python bench/gate_overlap.py \\
        out/sweep/ng-mini-llava-reduced-v3/cells/L15__topk0.1__all_positions \\
        out/sweep/ng-mini-llava-reduced-receipt/cells/L15__topk0.1__all_positions
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ng_core.evaluation.sweep import gate_consistency, read_gates
from ng_core.evaluation.sweep_numbers import cross_overlap


def cell_seeds(cell: Path) -> tuple[list, dict]:
    """The seeds of a sweep cell (first seed first, as its run names assume) and their train images."""
    meta = json.loads((cell / "cell.json").read_text(encoding="utf-8"))["meta"]
    seeds = [int(s) for s in meta["seed_records"]]
    return seeds, meta["seed_records"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cells", nargs="+", type=Path, help="sweep cell folders (OUT/cells/<setting>), one per category")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    a = ap.parse_args(argv)
    gates, within = {}, {}
    for cell in a.cells:
        if not (cell / "cell.json").exists():
            ap.error(f"{cell} is not a finished sweep cell (no cell.json)")
        seeds, recs = cell_seeds(cell)
        cons = gate_consistency(cell, seeds, recs)
        for g in ("neural_gate", "random_gate"):
            sets, n_rows = read_gates(cell, g, seeds)
            for place, by_seed in sets.items():
                gates[(g, place)] = (by_seed, n_rows[place])
                within[(g, place)] = (cons.get(g) or {}).get(place)
    rows = []
    print("| gate | rows shared by | pairs | mean shared | chance | shared / chance |")
    print("|---|---|---|---|---|---|")
    for g in ("neural_gate", "random_gate"):
        places = sorted(p for k, p in gates if k == g)
        for p in places:
            v = within[(g, p)]
            if v:
                rows.append({"gate": g, "a": p, "b": p, **v})
        for p, q in itertools.combinations(places, 2):
            if p.split("/")[0] == q.split("/")[0] or gates[(g, p)][1] != gates[(g, q)][1]:
                continue
            v = cross_overlap(gates[(g, p)][0], gates[(g, q)][0], gates[(g, p)][1])
            if v:
                rows.append({"gate": g, "a": p, "b": q, **v})
    for r in rows:
        what = f"two `{r['a']}` gates (different images)" if r["a"] == r["b"] else f"`{r['a']}` and `{r['b']}`"
        print(f"| {'learned' if r['gate'] == 'neural_gate' else 'random'} | {what} | {r['pairs']} | "
              f"{100 * r['overlap']:.1f}% | {100 * r['chance']:.1f}% | {r['overlap'] / r['chance']:.2f}x |")
    if a.json:
        a.json.write_text(json.dumps({"cells": [str(c) for c in a.cells], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
