"""AppTest: the Gates page — gate modes, strength and scope, live regeneration, the interventions panel."""
from __future__ import annotations

import pytest

from app_testing import finish_job, new_app, one_thread, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


def _answers(at):
    s = at.session_state["studio"]
    return s.compare(max_new_tokens=at.selectbox(key="w_gate_tokens").value)  # the page's answer length


@pytest.fixture
def at(tmp_path):
    at = new_app(tmp_path / "runs")
    at.button(key="use_passport").click().run()
    return at


def test_manual_single_neurons_without_localization(at):
    at.switch_page("app/page_gates.py").run()
    assert not at.exception and at.title[0].value == "Gates"
    assert at.radio(key="w_gate_mode").options == ["Single neurons — type them"]
    s = at.session_state["studio"]
    assert s.gates == [] and not at.toggle(key="w_gates_on").value  # opening the page switches nothing on
    at.toggle(key="w_gates_on").set_value(True).run()
    t = texts(at)
    assert "Without gates (base model)" in t and "With the gates" in t
    # one sentence per scope
    assert "Scale the neurons only at the subject's last token" in t and "Scale the neurons at every position" in t
    at.text_input(key="w_gate_single").input("L1:3, L1:5, L2:60").run()
    assert [(g.layer, g.neurons.tolist()) for g in s.gates] == [(1, [3, 5]), (2, [60])]
    assert "gate x0.00 at the subject token on 2 layers (L1–L2), 1–2 residual neurons each" in texts(at)
    at.text_input(key="w_gate_single").input("L9:1").run()
    assert any("layers are 0..3" in e.value for e in at.error)
    at.text_input(key="w_gate_single").input("nonsense").run()
    assert any("write L<layer>:<neuron>" in e.value for e in at.error)


def test_topk_gates_change_the_answer_live_and_toggle_off(at):
    at.switch_page("app/page_localize.py").run()
    at.multiselect(key="w_loc_layers").set_value([1, 2]).run()
    at.button(key="run_localize").click().run()
    finish_job(at)
    at.switch_page("app/page_gates.py").run()
    at.toggle(key="w_gates_on").set_value(True).run()
    modes = at.radio(key="w_gate_mode")
    assert len(modes.options) == 4
    modes.set_value("topk").run()
    at.slider(key="w_gate_k").set_value(64).run()
    at.radio(key="w_gate_where").set_value("all").run()
    s = at.session_state["studio"]
    assert [(g.layer, len(g.neurons), g.where, g.scale) for g in s.gates] == [(1, 64, "all", 0.0), (2, 64, "all", 0.0)]
    base, gated = _answers(at)
    assert base.text != gated.text
    t = texts(at)
    assert f"> {gated.text}" in t and f"> {base.text}" in t and "What changed" in t
    assert "gate x0.00 at every position on 2 layers (L1–L2), 64 residual neurons each" in t
    # strength 1 = unchanged
    at.slider(key="w_gate_scale").set_value(1.0).run()
    assert "The answers are identical" in texts(at)
    # gates off: nothing active, and the sidebar says so
    at.toggle(key="w_gates_on").set_value(False).run()
    assert s.gates == [] and "None: the gated answer equals the base answer." in texts(at)
    # the per-layer mode lists each layer with its count
    at.toggle(key="w_gates_on").set_value(True).run()
    at.radio(key="w_gate_mode").set_value("layers").run()
    labels = [c.label for c in at.checkbox]
    assert any(l.startswith("L1 — ") for l in labels) and any(l.startswith("L2 — ") for l in labels)


def test_gates_persist_across_pages(at):
    at.switch_page("app/page_gates.py").run()
    at.toggle(key="w_gates_on").set_value(True).run()
    at.text_input(key="w_gate_single").input("L2:1").run()
    at.switch_page("app/page_model.py").run()
    assert "gate x0.00 at the subject token on L2, 1 residual neuron" in texts(at)  # sidebar panel
    assert at.button(key="ask").label == "Get answer (with active interventions)"
    at.switch_page("app/page_gates.py").run()
    assert at.text_input(key="w_gate_single").value == "L2:1"


def test_toggle_answers_are_short_by_default_and_the_length_can_be_chosen(at):
    at.switch_page("app/page_gates.py").run()
    s = at.session_state["studio"]
    lengths = []  # (with interventions?, new tokens) of every answer the page generates
    generate = s._generate

    def spy(feats, prompt, subject, gates, deltas, max_new_tokens, *args, **kw):
        lengths.append((bool(gates or deltas), max_new_tokens))
        return generate(feats, prompt, subject, gates, deltas, max_new_tokens, *args, **kw)

    s._generate = spy
    try:
        assert at.selectbox(key="w_gate_tokens").value == 16 and s.max_new_tokens == 32  # other pages keep 32
        assert "first 16 tokens" in texts(at)
        at.toggle(key="w_gates_on").set_value(True).run()
        at.text_input(key="w_gate_single").input("L1:3, L2:60").run()
        at.radio(key="w_gate_where").set_value("all").run()
        assert (True, 16) in lengths and {n for _, n in lengths} == {16}  # the base answer too
        assert len(s.adapter.tokenizer(_answers(at)[1].text, add_special_tokens=False)["input_ids"]) <= 16
        lengths.clear()
        at.selectbox(key="w_gate_tokens").set_value(64).run()
        assert lengths == [(False, 64), (True, 64)] and "first 64 tokens" in texts(at)
        lengths.clear()
        at.slider(key="w_gate_scale").set_value(0.5).run()  # a toggle after the change keeps the chosen length
        assert lengths == [(True, 64)]
        at.switch_page("app/page_model.py").run()
        at.switch_page("app/page_gates.py").run()  # the choice survives a page switch
        assert at.selectbox(key="w_gate_tokens").value == 64 and "first 64 tokens" in texts(at)
    finally:
        s._generate = generate
