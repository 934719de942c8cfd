"""ng_core.studio.story (the session's state in words, the demo preset, stage bars) and ng_core.evaluation.garbled."""
from __future__ import annotations

import torch

from ng_core.evaluation.garbled import garbled
from ng_core.method.interventions import Delta, Gate
from ng_core.progress import Progress
from ng_core.studio.story import demo_differences, demo_preset, question_words, stage_bars, state_rows, state_summary


def test_garbled_flags_degenerate_text_and_keeps_values():
    for t in ("0101010101010101010101010101", "ttt ttt ttt ttt ttt ttt", "xkcdq zzrtp qwrtz ppp", "!!!???",
              "Hello hello hello hello hello hello hello", "aBcDeF gHiJk lmNoP"):
        assert garbled(t), t
    for t in ("", "005686752", "P 482-7193", "08 APR 1976", "SIMS", "I can't provide", "The cover is dark blue.",
              "The passport number is 005686752.", "Sorry, I cannot share personal information like names."):
        assert garbled(t) is None, t


def test_state_summary_groups_gates_on_many_layers():
    gates = [Gate(l, torch.arange(8), 0.0, "subject", "residual", f"gate L{l}") for l in range(1, 31)]
    text = state_summary(gates, [], hidden_size=160)
    assert text == "gate x0.00 at the subject token on 30 layers (L1–L30), 8 residual neurons each (5.0%)"
    d = Delta(15, torch.zeros(4, 6), label="edit (neural_gate, subject_position) L15")
    d.delta[1, 2] = 1.0
    both = state_summary(gates[:2] + [Gate(5, torch.arange(3), 0.0, "all", "residual", "gate L5")], [d])
    assert both == ("gate x0.00 at the subject token on 2 layers (L1–L2), 8 residual neurons each · "
                    "gate x0.00 at every position on L5, 3 residual neurons · edit (neural_gate, subject_position) on L15")
    assert state_summary([], []) == "none — the base model"
    rows = state_rows(gates[:1], [d])
    assert [r["kind"] for r in rows] == ["gate", "edit"] and rows[1]["neurons"] == 1


def test_demo_preset_is_labelled_a_speed_setting():
    p = demo_preset("ng-mini-llava", 30)
    assert p.name == "ng-mini-llava" and p.speed_setting
    assert "docs/results/preset-search/demo/" in p.description  # it names its evidence
    assert p.measured["part"] == "test" and p.measured["evidence"] == "docs/results/preset-search/demo/"
    assert "edit gate scope weight_rows → all_positions" in demo_differences(p)
    assert "edit questions per image 2 → 1" in demo_differences(p)
    t = demo_preset("tiny-random", 4)
    assert t.name == "tiny-random" and not t.speed_setting and t.demo["images"] >= 1
    assert demo_preset("some-other-model", 32).name == "default"


def test_stage_bars_never_run_backwards():
    p = Progress()
    p.update("mask", 25, 50, "mask")
    p.update("mask", 50, 50, "mask")
    p.update("edit", 43, 200, "edit")
    bars = stage_bars(p)
    assert [b["stage"] for b in bars] == ["mask", "edit"]
    assert bars[0]["fraction"] == 1.0 and bars[0]["eta"] is None
    assert abs(bars[1]["fraction"] - 43 / 200) < 1e-9


def test_question_words_put_content_words_first():
    assert question_words("What colour is the card?")[:2] == ["colour", "card"]
    assert "card" in question_words("What colour is the card?")


def test_demo_question_asks_for_a_value_the_card_prints():
    from types import SimpleNamespace

    from ng_core.studio.story import demo_question

    rec = SimpleNamespace(paraphrases=("Please describe the owner's occupation of the passport.",
                                       "What is the signature on the passport?",
                                       "Tell me the passport number of the passport in the photo."))
    assert demo_question(rec) == rec.paraphrases[2]
    assert demo_question(SimpleNamespace(paraphrases=("What is the signature?",))) == "What is the signature?"
    assert demo_question(SimpleNamespace(paraphrases=())) == ""
