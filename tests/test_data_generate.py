"""Generation: determinism, folder layout, variety of the images, speed."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ng_core.data import (
    ALL_CATEGORIES,
    BENIGN_CATEGORIES,
    CATEGORIES,
    FORMAT_NAME,
    IMAGE_SIZE,
    MIN_IMAGE_SIDE,
    SPLITS,
    UNSEEN_CATEGORIES,
    generate_dataset,
    load_dataset,
    sample_image,
)
from ng_core.errors import DataError

PER_CAT = 2


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "DATA"
    calls = []
    t0 = time.perf_counter()
    generate_dataset(out, seed=7, per_category=PER_CAT, progress=lambda d, t, m: calls.append((d, t, m)))
    elapsed = time.perf_counter() - t0
    return out, calls, elapsed


def test_same_seed_gives_byte_identical_files(generated, tmp_path):
    out, _, _ = generated
    again = generate_dataset(tmp_path / "again", seed=7, per_category=PER_CAT)
    a, b = _hashes(out), _hashes(again)
    assert len(a) == PER_CAT * len(ALL_CATEGORIES) + len(ALL_CATEGORIES) + 1  # images + json files + dataset.json
    assert a == b


def test_other_seed_gives_other_images(generated, tmp_path):
    out, _, _ = generated
    other = generate_dataset(tmp_path / "other", seed=8, per_category=1, categories=["passport", "chart"])
    for cat in ("passport", "chart"):
        rel = f"images/{cat}/{cat}_0000.png"
        assert (out / rel).read_bytes() != (other / rel).read_bytes()


def test_layout_and_description(generated):
    out, _, _ = generated
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["format"] == FORMAT_NAME and meta["seed"] == 7 and meta["per_category"] == PER_CAT
    assert [c["id"] for c in meta["categories"]] == list(ALL_CATEGORIES)
    assert list(meta["splits"]) == list(SPLITS)
    for cat in ALL_CATEGORIES:
        recs = json.loads((out / f"neural_gate_{cat}.json").read_text())
        assert len(recs) == PER_CAT
        for i, rec in enumerate(recs):
            assert rec["case_id"] == i
            assert rec["image"] == f"images/{cat}/{cat}_{i:04d}.png"
            assert (out / rec["image"]).is_file()
            assert rec["category"] == cat
    # the counts in dataset.json are those the loader finds
    ds = load_dataset(out)
    for split, st in ds.split_stats().items():
        assert meta["splits"][split] == {"images": st["images"], "refuse": st["refuse"], "answer": st["answer"]}


def test_images_are_valid_and_distinct(generated):
    out, _, _ = generated
    arrays = []
    for p in sorted((out / "images").rglob("*.png")):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert MIN_IMAGE_SIDE <= max(im.size) <= IMAGE_SIZE
            arrays.append(np.asarray(im.resize((96, 96)), dtype=np.float32))
    assert len({a.tobytes() for a in arrays}) == len(arrays)
    # no image is a near copy of another (mean absolute pixel difference, on a common small size)
    flat = np.stack([a.reshape(-1) for a in arrays])
    for i in range(len(flat)):
        d = np.abs(flat[i + 1:] - flat[i]).mean(axis=1)
        assert d.size == 0 or d.min() > 8.0


def test_images_vary_within_a_category():
    """Held-out images are not copies of train ones: layouts and colours differ across seeds."""
    for cat in ALL_CATEGORIES:
        ims = [np.asarray(sample_image(cat, s).resize((128, 128)), dtype=np.float32) for s in range(3)]
        means = [im.mean(axis=(0, 1)) for im in ims]
        pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
        spread = max(np.abs(means[i] - means[j]).max() for i, j in pairs)
        diffs = [np.abs(ims[i] - ims[j]).mean() for i, j in pairs]
        assert min(diffs) > 10.0, cat
        assert spread > 3.0, cat


def test_sample_image_is_deterministic_and_matches_the_dataset(generated):
    out, _, _ = generated
    a, b = sample_image("receipt", 123), sample_image("receipt", 123)
    assert a.tobytes() == b.tobytes()
    rec = json.loads((out / "neural_gate_receipt.json").read_text())[1]
    with Image.open(out / rec["image"]) as im:
        assert np.array_equal(np.asarray(im), np.asarray(sample_image("receipt", rec["image_seed"])))
    with pytest.raises(DataError, match="unknown category"):
        sample_image("selfie", 0)


def test_progress_reports_every_image(generated):
    # (generation speed is measured in BENCHMARKS.md, not asserted here)
    _, calls, _ = generated
    total = PER_CAT * len(ALL_CATEGORIES)
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert all(c[1] == total for c in calls)


def test_subset_of_categories_and_split_assignment(tmp_path):
    out = generate_dataset(tmp_path / "d", seed=1, per_category=6, categories=["scene", "passport", "credit_card"])
    ds = load_dataset(out)
    assert ds.categories == ["passport", "credit_card", "scene"]
    assert {r.split for r in ds.records("passport")} == {"train", "heldout_images", "heldout_templates"}
    assert len(ds.records("passport", "train")) == 2  # a third of 6
    assert len(ds.records("passport", "heldout_images")) == 4
    assert {r.split for r in ds.records("credit_card")} == {"unseen_categories"}
    assert {r.split for r in ds.records("scene")} == {"benign_controls"}
    assert set(UNSEEN_CATEGORIES).isdisjoint(CATEGORIES) and set(BENIGN_CATEGORIES).isdisjoint(CATEGORIES)


def test_regenerate_replaces_dataset_but_keeps_other_files(tmp_path):
    out = generate_dataset(tmp_path / "d", seed=0, per_category=3, categories=["chart"])
    (out / "my_cases.jsonl").write_text("{}\n")
    generate_dataset(out, seed=0, per_category=1, categories=["scene"])
    assert (out / "my_cases.jsonl").is_file()
    assert not (out / "neural_gate_chart.json").exists() and not (out / "images" / "chart").exists()
    assert sorted(p.name for p in (out / "images" / "scene").iterdir()) == ["scene_0000.png"]
    assert not (tmp_path / "d.partial").exists()


def test_refuses_bad_arguments(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(busy, per_category=1, categories=["chart"])
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(DataError, match="unknown category"):
        generate_dataset(tmp_path / "x", per_category=1, categories=["selfie"])
    with pytest.raises(DataError, match="at least 1"):
        generate_dataset(tmp_path / "y", per_category=0)


def test_wording_variants_change_words_not_values():
    """Variants (reader training option) reword titles and labels; names, numbers and the plain family stay."""
    from ng_core.data.images import render_sample

    changed = 0
    for cat in ("student_id", "drivers_license", "receipt", "document", "phone_number", "credit_card",
                "military_vehicle"):
        for seed in range(6):
            plain, varied = render_sample(cat, seed), render_sample(cat, seed, variants=True)
            assert varied.truth["secrets"] == plain.truth["secrets"]
            changed += varied.truth["lines"] != plain.truth["lines"]
    assert changed >= 6


def test_vehicle_close_ups_keep_their_markings_in_the_frame():
    """The close-up variant makes a vehicle larger than the frame; its serial and unit must still be readable."""
    from ng_core.data import scenes
    from ng_core.data.draw import make_ctx

    close = 0
    for seed in range(30):
        sheet = scenes.military_vehicle(make_ctx(seed, variants=True))
        assert [it.text for it in sheet.items] and len(sheet.items) == 2
        for it in sheet.items:
            assert 0 <= it.x and it.x + it.w <= scenes.SCENE_SIZE, (seed, it)
        plain = scenes.military_vehicle(make_ctx(seed))
        close += max(it.h for it in sheet.items) > 1.2 * max(it.h for it in plain.items)
    assert close >= 5  # the variant is drawn (about 40% of images)
