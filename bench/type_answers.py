"""Every answer to the type question, image by image, with what the OCR read: where type naming fails and why.

``eval_reader`` gives a rate per category and keeps two examples; this lists every answer, so that the failures
can be read (a receipt called "a printed document", a card's number taken for a phone number). Images and the
question are those of ``eval_reader`` (same seeds), so the first ``--per-category`` images are its images.

    .venv/bin/python bench/type_answers.py --family heldout --categories credit_card,drivers_license \\
        --per-category 30 --out /tmp/type-answers.json [--model ng-mini-llava] [--threads 2]

Writes ``--out`` (fingerprint, command, one row per image) and prints the rate per category and the failures.

``--look`` asks whether the look or the words decide: the reading is always the image's own, the vision tower
sees the image itself (``own``), the image turned a quarter (``sideways``), a plain grey image of its size
(``grey``), or the first main-family image of its category (``main``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


LOOKS = ("own", "sideways", "grey", "main")


def shown_image(look: str, image, category: str):
    """The image the vision tower sees for ``--look`` (the OCR reads ``image`` itself)."""
    from PIL import Image

    from ng_core.data.images import render_sample
    from ng_train.mini.eval_reader import eval_seed

    if look == "sideways":
        return image.rotate(90, expand=True)
    if look == "grey":
        return Image.new("RGB", image.size, (128, 128, 128))
    if look == "main":
        return render_sample(category, eval_seed("main", category, 0), "main").image
    return image


def main(argv=None) -> int:
    import torch

    from ng_core.data.constants import ALL_CATEGORIES
    from ng_core.data.images import render_sample
    from ng_core.models import load_model
    from ng_train.mini.eval_judges import names_category
    from ng_train.mini.eval_reader import eval_seed
    from ng_train.mini.train_recipe import TYPE_QUESTION
    from ng_core.models.reading import block_lines

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ng-mini-llava")
    p.add_argument("--family", choices=("heldout", "main"), default="heldout")
    p.add_argument("--categories", default=",".join(ALL_CATEGORIES))
    p.add_argument("--per-category", type=int, default=30)
    p.add_argument("--max-new-tokens", type=int, default=24, help="as eval_reader")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--look", choices=LOOKS, default="own",
                   help="what the vision tower sees; the reading is always the image's own (default: own)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    cats = [c.strip() for c in a.categories.split(",") if c.strip()]
    unknown = sorted(set(cats) - set(ALL_CATEGORIES))
    if unknown or not cats:
        p.error(f"--categories: unknown {unknown}; known: {', '.join(ALL_CATEGORIES)}")
    if a.per_category < 1:
        p.error("--per-category must be at least 1")
    torch.set_num_threads(a.threads)
    adapter = load_model(a.model)
    t0 = time.perf_counter()
    jobs = []
    for c in cats:
        for i in range(a.per_category):
            s = render_sample(c, eval_seed(a.family, c, i), a.family)
            shown = shown_image(a.look, s.image, c)
            jobs.append((c, i, adapter.encode_image_uncached(shown), adapter.read_image_uncached(s.image)))
    rows = []
    with torch.no_grad():
        for k in range(0, len(jobs), 8):
            chunk = jobs[k:k + 8]
            gens = adapter.generate([(f, TYPE_QUESTION, None, r) for _, _, f, r in chunk],
                                    max_new_tokens=a.max_new_tokens)
            rows += [{"category": c, "index": i, "right": names_category(g.text, c), "answer": g.text,
                      "read": block_lines(r)} for (c, i, _, r), g in zip(chunk, gens)]
    res = {"model": a.model, "fingerprint": adapter.fingerprint(), "family": a.family, "look": a.look,
           "command": "bench/type_answers.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "seconds": round(time.perf_counter() - t0, 1),
           "rates": {c: round(sum(r["right"] for r in rows if r["category"] == c) / a.per_category, 3) for c in cats},
           "rows": rows}
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    for c in cats:
        print(f"{c}: {res['rates'][c]:.0%} of {a.per_category}")
    for r in rows:
        if not r["right"]:
            print(f"  {r['category']} #{r['index']}: {r['answer']!r} | read: {' / '.join(r['read'][:6])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
