"""How often the reading block's colour line names the card's true colour, before any model is involved.

Why: ``ng-mini-llava`` names colours by copying the line ``Colour behind the text: ...``
(:func:`ng_core.models.reading.surface_colour`), so that line must be right first. The truth is the colour
measured under the card's own mask when the generator draws it (``truth["colours"]["card"]``), and the painted
colour for the cards drawn outside the generator (``bench/outside_cards.py``). Compared: the shipped measurement
(median of the rectangle spanning the OCR's text boxes) and the maskless fallback (median of the middle of the
image), on the images ``eval_reader`` uses (10 per category of each rendering family, colour categories only).

    .venv/bin/python bench/surface_colour_check.py --json docs/results/surface-colour/check.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def images(per_category: int):
    """(family, category, image, true colour) for the evaluation cards and the outside cards."""
    import outside_cards as oc

    from ng_core.data.constants import ALL_CATEGORIES
    from ng_core.data.images import render_sample
    from ng_train.mini.eval_reader import eval_seed

    for fam in ("heldout", "main"):
        for c in ALL_CATEGORIES:
            if c in ("scene", "chart", "military_vehicle"):  # no card colour asked (as in eval_reader)
                continue
            for i in range(per_category):
                s = render_sample(c, eval_seed(fam, c, i), fam)
                yield fam, c, s.image, s.truth["colours"]["card"]
    for k, cd in enumerate(oc.cards()):
        yield "outside", cd["category"], cd["img"], cd["colour"]
        yield "outside", cd["category"], oc.photographed(cd["img"], k), cd["colour"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-category", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the counts and every miss here")
    a = ap.parse_args(argv)
    from ng_train.mini.eval_reader import colour_right
    from ng_core.models.reading import OcrReader, ReadingConfig, surface_colour

    reader = OcrReader(ReadingConfig(enabled=True, colour=True, threads=a.threads))
    counts, misses, t0 = {}, [], time.perf_counter()
    for fam, cat, img, truth in images(a.per_category):
        _, boxes = reader.read_with_boxes(img)
        for method, name in (("text boxes (shipped)", surface_colour(img, boxes)),
                             ("middle of the image", surface_colour(img))):
            ok = bool(colour_right(f"mostly {name}", truth))
            d = counts.setdefault(fam, {}).setdefault(method, {"right": 0, "n": 0, "right_non_white": 0,
                                                               "n_non_white": 0})
            d["right"] += ok
            d["n"] += 1
            if truth != "white":
                d["right_non_white"] += ok
                d["n_non_white"] += 1
            if not ok and method.endswith("(shipped)"):
                misses.append({"family": fam, "category": cat, "truth": truth, "measured": name})
    for fam, by in counts.items():
        for method, d in by.items():
            print(f"{fam:8} {method:22} {d['right']}/{d['n']} right, non-white {d['right_non_white']}/{d['n_non_white']}")
    res = {"command": "python bench/surface_colour_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "per_category": a.per_category, "counts": counts, "misses": misses,
           "seconds": round(time.perf_counter() - t0, 1)}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
