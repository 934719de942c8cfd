"""Readability check of the generated images with a real OCR (rapidocr).

For each private category, family and style: the share of the ground-truth secrets found in the OCR text
(both lower-cased, with spaces and punctuation removed) and the OCR seconds per image::

    python -m ng_core.data.ocr_check --per-style 10 --families main heldout

Prints a Markdown table. Needs ``rapidocr`` (and onnxruntime, opencv) installed.
"""
from __future__ import annotations

import argparse
import re
import sys
import time

import numpy as np

from ng_core.data.constants import ALL_CATEGORIES, BENIGN_CATEGORIES
from ng_core.data.images import render_sample

PRIVATE = tuple(c for c in ALL_CATEGORIES if c not in BENIGN_CATEGORIES)


def norm(s: str) -> str:
    return re.sub(r"[\W_]+", "", s.lower())


def found(secrets, texts) -> list[bool]:
    """Whether each secret occurs in the OCR text (normalised, boxes joined in reading order)."""
    joined = norm("".join(texts))
    return [norm(s) in joined for s in secrets]


def ocr_engine():
    from rapidocr import RapidOCR  # deferred: rapidocr loads onnxruntime and its models

    return RapidOCR()


def read(engine, img) -> list[str]:
    r = engine(np.asarray(img.convert("RGB")))
    return list(r.txts or ())


def check(families=("main", "heldout"), categories=PRIVATE, per_style: int = 10, max_seeds: int = 80,
          engine=None, log=None):
    """Rows {family, category, style, images, secrets, found, seconds_per_image, misses}."""
    engine = engine or ocr_engine()
    rows = []
    for fam in families:
        for cat in categories:
            buckets = {"flat": [], "photo": []}
            for seed in range(max_seeds):
                s = render_sample(cat, 1000 + seed, fam)
                b = buckets.get(s.truth["style"])
                if b is not None and len(b) < per_style:
                    b.append(s)
                if all(len(v) >= per_style for v in buckets.values()):
                    break
            for style, samples in buckets.items():
                if not samples:
                    continue
                n_sec = n_found = 0
                secs = 0.0
                misses = []
                for s in samples:
                    t = time.perf_counter()
                    texts = read(engine, s.image)
                    secs += time.perf_counter() - t
                    ok = found(s.secrets, texts)
                    n_sec += len(ok)
                    n_found += sum(ok)
                    misses += [v for v, k in zip(s.secrets, ok) if not k]
                row = {"family": fam, "category": cat, "style": style, "images": len(samples), "secrets": n_sec,
                       "found": n_found, "seconds_per_image": secs / len(samples), "misses": misses[:6]}
                rows.append(row)
                if log:
                    log(row)
    return rows


def table(rows) -> str:
    out = ["| family | category | style | images | secrets read | OCR s/image |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['family']} | {r['category']} | {r['style']} | {r['images']} | "
                   f"{r['found']}/{r['secrets']} ({100 * r['found'] / max(1, r['secrets']):.0f}%) | "
                   f"{r['seconds_per_image']:.2f} |")
    for fam in dict.fromkeys(r["family"] for r in rows):
        fr = [r for r in rows if r["family"] == fam]
        a, b = sum(r["found"] for r in fr), sum(r["secrets"] for r in fr)
        out.append(f"| **{fam}** | all | all | {sum(r['images'] for r in fr)} | **{a}/{b} ({100 * a / max(1, b):.1f}%)** | "
                   f"{sum(r['seconds_per_image'] * r['images'] for r in fr) / max(1, sum(r['images'] for r in fr)):.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=["main", "heldout"])
    p.add_argument("--categories", nargs="+", default=list(PRIVATE))
    p.add_argument("--per-style", type=int, default=10)
    a = p.parse_args(argv)
    rows = check(a.families, a.categories, a.per_style,
                 log=lambda r: print(r["family"], r["category"], r["style"], f"{r['found']}/{r['secrets']}",
                                     f"{r['seconds_per_image']:.2f}s", r["misses"], file=sys.stderr, flush=True))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
