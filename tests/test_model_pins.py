"""Pins: the default model and the tiny random LLaVA answer, hash and replay exactly as before the family adapter.

``tests/data/model_pins.json`` was written from the LLaVA-only adapter (before the generic adapter existed):
each model's fingerprint, its greedy answers (4 new tokens) to prompts with and without an image of the
project's own generated data, the rendered token ids, the subject position, the top-5 next-token logits of
``forward`` and of a replay from the middle layer, and a two-row batch that shares its image prefix.
Any change to how these models are loaded, prompted, run or decoded shows up here.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

PINS = json.loads((Path(__file__).parent / "data" / "model_pins.json").read_text())


def _check(a, pins):
    from ng_core.data import sample_image

    assert a.fingerprint() == pins["fingerprint"]
    assert a.n_image_tokens == pins["n_image_tokens"]
    for p in pins["answers"]:
        cat, seed = p["image"]
        f = a.encode_image(sample_image(cat, seed)) if cat else None
        g = a.generate([(f, p["prompt"], p["subject"])], max_new_tokens=4)[0]
        assert g.token_ids == p["token_ids"], p["prompt"]
        assert g.text == p["text"]
        s = a.build(p["prompt"], subject=p["subject"], has_image=f is not None)
        assert hashlib.sha256(str(s.input_ids.tolist()).encode()).hexdigest()[:16] == p["input_ids_sha"]
        assert s.subject_pos == p["subject_pos"]
        with torch.no_grad():
            lg = a.logits(a.forward(a.collate([s], [f])))[0, -1].float()
        top = lg.topk(5)
        assert top.indices.tolist() == p["top5"]
        assert [round(float(x), 3) for x in top.values] == pytest.approx(p["top5_logits"], abs=2e-3)
    f = a.encode_image(sample_image("passport", 7))
    gs = a.generate([(f, "What type of document is shown in this image?"),
                     (f, "What colour is the cover of the passport?", "the passport")], max_new_tokens=4)
    assert [g.token_ids for g in gs] == pins["batch"]
    r = pins["replay"]
    s = a.build("What is the passport number of the passport in this image?", subject="the passport")
    b = a.collate([s], [f])
    assert s.subject_pos == r["subject_pos"]
    with torch.no_grad():
        lg = a.logits(a.run_layers(a.hidden_entering(r["layer"], b), r["layer"], b))[0, -1].float()
    top = lg.topk(5)
    assert top.indices.tolist() == r["top5"]
    assert [float(x) for x in top.values] == pytest.approx(r["top5_logits"], abs=2e-3)


def test_tiny_random_is_pinned():
    from ng_core.models import load_model

    _check(load_model("tiny-random"), PINS["tiny-random"])


@pytest.mark.slow
def test_default_model_is_pinned():
    from ng_core.models import load_model

    _check(load_model("ng-mini-llava"), PINS["ng-mini-llava"])
