"""Ground truth of the generated images: truth keys, secrets drawn as text, sizes, families, determinism."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ng_core.data import ALL_CATEGORIES, BENIGN_CATEGORIES, IMAGE_SIZE, MIN_IMAGE_SIDE, generate_dataset, render_sample
from ng_core.data.images import png_bytes

PRIVATE = [c for c in ALL_CATEGORIES if c not in BENIGN_CATEGORIES]
KEYS = {"fields", "secrets", "lines", "style", "family", "font", "colours"}


@pytest.mark.parametrize("family", ["main", "heldout"])
def test_truth_keys_secrets_in_lines_and_sizes(family):
    for cat in ALL_CATEGORIES:
        for seed in range(3):
            s = render_sample(cat, seed, family)
            t = s.truth
            assert set(t) == KEYS, cat
            assert t["family"] == family and t["style"] in ("flat", "photo")
            assert set(t["colours"]) == {"card", "background"}
            assert s.image.mode == "RGB" and MIN_IMAGE_SIDE <= max(s.image.size) <= IMAGE_SIZE, (cat, s.image.size)
            if cat in PRIVATE:
                assert t["secrets"], (cat, seed)
                assert all(len(f) == 2 for f in t["fields"])
                for sec in t["secrets"]:
                    assert any(sec in line for line in t["lines"]), (cat, seed, sec)
            else:
                assert t["secrets"] == []


@pytest.mark.parametrize("family", ["main", "heldout"])
def test_same_seed_same_bytes(family):
    for cat in ("passport", "receipt", "military_vehicle", "chart"):
        a, b = render_sample(cat, 11, family), render_sample(cat, 11, family)
        assert png_bytes(a.image) == png_bytes(b.image) and a.truth == b.truth


def test_both_styles_occur_and_flat_scans_keep_the_card_aspect():
    styles = {render_sample("credit_card", s).truth["style"]: render_sample("credit_card", s).image.size
              for s in range(12)}
    assert set(styles) == {"flat", "photo"}
    w, h = styles["flat"]
    assert 1.45 < w / h < 1.65  # an ID-1 card fills the frame


def test_heldout_differs_from_main():
    for cat in PRIVATE:
        m, h = render_sample(cat, 5), render_sample(cat, 5, "heldout")
        assert png_bytes(m.image) != png_bytes(h.image)
        assert m.truth["secrets"] != h.truth["secrets"]
    labels = {f[0] for s in range(5) for f in render_sample("passport", s, "heldout").truth["fields"]}
    assert "Doc. no." in labels and "Passport No." not in labels


def test_tinted_paper_varies_the_card_colour_and_leaves_the_rest():
    """tint_share 0 is the plain family; tinted cards keep their text and truth, only colours change."""
    plain = [render_sample("receipt", s) for s in range(12)]
    assert all(png_bytes(p.image) == png_bytes(render_sample("receipt", s, tint_share=0.0).image)
               for s, p in enumerate(plain))
    tinted = [render_sample("receipt", s, tint_share=1.0) for s in range(12)]
    for p, t in zip(plain, tinted):
        assert {k: v for k, v in p.truth.items() if k != "colours"} == {k: v for k, v in t.truth.items() if k != "colours"}
    assert sum(p.truth["colours"]["card"] == "white" for p in plain) >= 8  # receipts are white paper ...
    colours = [t.truth["colours"]["card"] for t in tinted]
    assert sum(c == "white" for c in colours) <= 2 and len(set(colours)) >= 4  # ... unless printed on tinted paper
    assert png_bytes(render_sample("receipt", 3, tint_share=1.0).image) == png_bytes(tinted[3].image)
    half = [render_sample("receipt", s, tint_share=0.5).truth["colours"]["card"] for s in range(40)]
    assert 8 <= sum(c != "white" for c in half) <= 32


def test_text_is_large():
    """Values are drawn 20+ units high (the fonts' cap height about 16 px in a flat scan)."""
    from ng_core.data import documents
    from ng_core.data.draw import make_ctx

    for cat, fn in documents.RENDERERS.items():
        sheet = fn(make_ctx(3))
        secret_items = [it for it in sheet.items if any(sec in it.text for sec in sheet.secrets)]
        assert secret_items and min(it.h for it in secret_items) >= 14, cat


def test_dataset_records_carry_truth(tmp_path):
    out = generate_dataset(tmp_path / "d", seed=3, per_category=1, categories=["passport", "scene"])
    rec = json.loads((out / "neural_gate_passport.json").read_text())[0]
    assert rec["secrets"] and rec["fields"] and rec["style"] in ("flat", "photo") and rec["family"] == "main"
    assert render_sample("passport", rec["image_seed"]).truth["secrets"] == rec["secrets"]
    held = generate_dataset(tmp_path / "h", seed=3, per_category=1, categories=["passport"], family="heldout")
    hrec = json.loads((held / "neural_gate_passport.json").read_text())[0]
    assert hrec["family"] == "heldout" and hrec["image_seed"] != rec["image_seed"]
    assert json.loads((held / "dataset.json").read_text())["family"] == "heldout"
    assert (held / hrec["image"]).read_bytes() != (out / rec["image"]).read_bytes()


@pytest.mark.slow
def test_real_ocr_reads_the_secrets():
    rapidocr = pytest.importorskip("rapidocr")
    eng = rapidocr.RapidOCR()
    norm = lambda s: re.sub(r"[\W_]+", "", s.lower())  # noqa: E731
    n = ok = 0
    for cat, fam in (("passport", "main"), ("credit_card", "main"), ("drivers_license", "heldout")):
        s = render_sample(cat, 2, fam)
        text = norm("".join(eng(np.asarray(s.image)).txts or ()))
        n += len(s.secrets)
        ok += sum(norm(v) in text for v in s.secrets)
    assert ok >= 0.8 * n, (ok, n)
