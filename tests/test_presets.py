"""Presets: chosen per model, overridable, validated; the general-question set is well formed."""
import json

import pytest

from ng_core.errors import NGError
from ng_core.data.general import general_questions
from ng_core.method.presets import available, load_preset, preset_json


def test_model_ids_pick_their_presets():
    assert load_preset("ng-mini-llava", 30)["name"] == "ng-mini-llava"
    p = load_preset("/models/llava-1.5-7b-hf", 32)
    assert p["name"] == "llava-1.5-7b-hf" and p["layer"] == 11
    assert p["edit"].lr == 1e-5 and p["edit"].gate_scope == "subject_position"
    assert p["mask"].steps == 25 and p["mask"].lr == 0.5 and p["mask"].threshold == 0.3
    other = load_preset("/models/some-llava-13b", 40)
    assert other["name"] == "default" and other["layer"] == round(0.34375 * 40)


def test_override_by_name_and_file(tmp_path):
    assert load_preset("tiny-random", 4, override="ng-mini-llava")["name"] == "ng-mini-llava"
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"layer": 1, "edit": {"lr": 0.5, "gate_scope": "weight_rows"}}))
    p = load_preset("tiny-random", 4, override=str(f))
    assert p["layer"] == 1 and p["edit"].lr == 0.5 and p["edit"].gate_scope == "weight_rows"
    assert preset_json(p)["edit"]["lr"] == 0.5
    f.write_text(json.dumps({"edit": {"learning_rate": 1}}))
    with pytest.raises(NGError, match="unknown keys: learning_rate"):
        load_preset("tiny-random", 4, override=str(f))
    with pytest.raises(NGError, match="unknown preset"):
        load_preset("tiny-random", 4, override="nope")


def test_demo_is_a_preset_name_for_every_model():
    """`ng edit --preset demo` gets the model's guided-demo preset (its match, else demo.default)."""
    mini = load_preset("ng-mini-llava", 30, override="demo")
    assert mini["name"] == "ng-mini-llava"
    assert mini["edit"].to_dict() == load_preset("ng-mini-llava", 30, method="demo")["edit"].to_dict()
    assert load_preset("/models/some-llava-13b", 40, override="demo")["name"] == "default"
    assert load_preset("tiny-random", 4, override="demo")["edit"].steps == load_preset(
        "tiny-random", 4, method="demo")["edit"].steps


def test_ng_presets_lists_the_demo_presets(capsys):
    from ng_core.cli.main import main

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "demo (ng-mini-llava)" in out and "ng-mini-llava " in out


def test_every_shipped_preset_is_valid():
    for name in available():
        p = load_preset(name, 30, override=name)
        assert 0 <= p["layer"] < 30


def test_general_questions_split_cleanly():
    train, ev = general_questions("train"), general_questions("eval")
    assert len(train) >= 15 and len(ev) >= 15
    assert not {q.prompt for q in train} & {q.prompt for q in ev}
    assert any(q.image for q in train) and any(not q.image for q in train)
    assert any(q.image for q in ev) and any(not q.image for q in ev)
