"""Are the learned rows one category's, or rows any privacy edit picks? Rows shared within and across categories.

Why: in the sweeps the learned gates of one category share far more rows across train images than random
ones (``ng sweep``'s consistency table). That alone does not say the rows carry *that* category's concept:
Stage A could pick the same generally influential rows for any document. This compares, at the same layer
and gate size, the rows shared by two gates of one category (different train images) with the rows shared
by a gate of one category and a gate of another. Reads the cells' run bundles only; computes nothing new,
except with ``--magnitude DATA``: then it also runs the default model on DATA's train images, to ask whether
the learned rows are simply the residual dims of largest magnitude at the subject token.

    .venv/bin/python bench/gate_overlap.py \\
        out/sweep/ng-mini-llava-reduced-v3/cells/L15__topk0.1__all_positions \\
        out/sweep/ng-mini-llava-reduced-receipt/cells/L15__topk0.1__all_positions \\
        --sweep docs/results/sweep-ng-mini-llava-passport-fine/sweep.json \\
        --sweep docs/results/sweep-ng-mini-llava-receipt/sweep.json \\
        --magnitude out/sweep/ng-mini-llava-reduced-v3/data
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


def cell_seeds(cell: Path, sweep: Path | None = None) -> tuple[list, dict]:
    """The seeds of a sweep cell (first seed first, as its run names assume) and their train images: from
    ``sweep`` (a sweep.json holding this setting) when given, else from the cell's ``cell.json``, which holds
    the seeds of the last command that rendered the cell (a cell is shared by sweeps with other seed lists)."""
    if sweep is not None:
        res = json.loads(Path(sweep).read_text(encoding="utf-8"))
        found = [c for c in res.get("cells", []) if c["setting"]["id"] == cell.name]
        if not found:
            raise SystemExit(f"{sweep} has no setting {cell.name}")
        meta = found[0]["meta"]
    else:
        meta = json.loads((cell / "cell.json").read_text(encoding="utf-8"))["meta"]
    seeds = [int(s) for s in meta["seed_records"]]
    return seeds, meta["seed_records"]


def magnitude_rows(adapter, data: Path, category: str, layer: int, n_images: int = 6) -> list:
    """Residual dims of ``layer``'s output ordered by mean |h| at the subject token, over the first ``n_images``
    train images of ``category`` in the dataset ``data`` (2 paraphrases each)."""
    from ng_core.data import load_dataset
    from ng_core.method.scores import capture_activations

    recs = load_dataset(data).records(category, split="train")[:n_images]
    items = [(r.image, p, r.subject) for r in recs for p in r.paraphrases[:2]]
    act = capture_activations(adapter, items, [layer], position="subject")["residual"][:, 0]
    return act.abs().mean(0).argsort(descending=True).tolist()


def magnitude_table(gates: dict, data: Path) -> list[dict]:
    """Is consistency just a taste for large dims? Per gate kind and place: the share of gate rows among the
    |gate| dims of largest |h|, and the overlap two gates would have if they picked rows only by that taste
    (uniformly inside and outside the large dims, in the measured shares)."""
    from ng_core.models import load_model

    adapter = load_model("ng-mini-llava")  # once, for every category and layer
    rows = []
    order: dict = {}
    for (g, place), (by_seed, n) in sorted(gates.items()):
        cat, layer = place.split("/")[0], int(place.split("/L")[1])
        if (cat, layer) not in order:
            order[(cat, layer)] = magnitude_rows(adapter, data, cat, layer)
        shares, expect = [], []
        for s in by_seed.values():
            top = set(order[(cat, layer)][:len(s)])
            shares.append(len(s & top) / len(s))
        k = sum(len(s) for s in by_seed.values()) / len(by_seed)
        for a, b in itertools.combinations(shares, 2):
            expect.append((a * b * k + (1 - a) * (1 - b) * k * k / (n - k)) / k)
        rows.append({"gate": g, "place": place, "share_in_top": sum(shares) / len(shares), "chance": k / n,
                     "overlap_from_magnitude": sum(expect) / len(expect) if expect else None})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cells", nargs="+", type=Path, help="sweep cell folders (OUT/cells/<setting>), one per category")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--magnitude", type=Path, metavar="DATA",
                    help="also ask whether the gates just prefer large residual dims, with activations of the "
                         "default model on this dataset's train images (the sweep's OUT/data)")
    ap.add_argument("--sweep", type=Path, action="append", default=[],
                    help="sweep.json whose seeds to use, one per cell in the same order (default: each cell's "
                         "cell.json, i.e. the seeds of the last command that rendered it)")
    a = ap.parse_args(argv)
    if a.sweep and len(a.sweep) != len(a.cells):
        ap.error("give one --sweep per cell, or none")
    gates, within, used = {}, {}, {}
    for n, cell in enumerate(a.cells):
        if not (cell / "cell.json").exists():
            ap.error(f"{cell} is not a finished sweep cell (no cell.json)")
        seeds, recs = cell_seeds(cell, a.sweep[n] if a.sweep else None)
        used[str(cell)] = seeds
        print(f"{cell}: seeds {', '.join(map(str, seeds))}")
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
    mag = magnitude_table(gates, a.magnitude) if a.magnitude else []
    if mag:
        print()
        print("| gate | place | rows among the largest-|h| dims | chance | overlap expected from that alone |")
        print("|---|---|---|---|---|")
        for r in mag:
            ex = "–" if r["overlap_from_magnitude"] is None else f"{100 * r['overlap_from_magnitude']:.1f}%"
            print(f"| {'learned' if r['gate'] == 'neural_gate' else 'random'} | `{r['place']}` | "
                  f"{100 * r['share_in_top']:.1f}% | {100 * r['chance']:.1f}% | {ex} |")
    if a.json:
        a.json.write_text(json.dumps({"cells": [str(c) for c in a.cells], "seeds": used, "rows": rows, "magnitude": mag},
                                     indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
