"""AppTest: the Edit page — run with live status, before/after, ΔW view, revert, save, load; two sessions."""
from __future__ import annotations

import pytest

from app.testing import chart_titles, finish_job, new_app, one_thread, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PROMPT = "What is the passport number of the passport in this image?"
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture
def runs(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def at(runs):
    at = new_app(runs)
    at.button(key="use_passport").click().run()
    at.text_area(key="w_prompt").input(PROMPT).run()
    return at.switch_page("app/page_edit.py").run()


def test_controls_explain_the_gate_scopes(at):
    from ng_core.edit import GATE_SCOPE_HELP

    assert not at.exception and at.title[0].value == "Edit"
    t = texts(at)
    for help_text in GATE_SCOPE_HELP.values():
        assert help_text in t
    assert "No edit is active" in t
    assert at.selectbox(key="w_edit_layer").value == 2
    assert at.selectbox(key="w_edit_method").options[0].startswith("Neural Gate")


def test_edit_before_after_revert_save_load(at, runs):
    at.number_input(key="w_edit_lr").set_value(0.05).run()
    at.selectbox(key="w_edit_method").set_value("ft").run()
    assert at.radio(key="w_edit_scope").disabled
    at.button(key="run_edit").click().run()
    s = at.session_state["studio"]
    assert s.job.kind == "edit"
    finish_job(at)
    assert not at.exception and s.job.status == "done", s.job.error_message()
    t = texts(at)
    assert "Edit finished" in t and "Current edit" in t
    assert "edit (ft) L2: layer 2 down_proj" in t
    df = at.dataframe[0].value
    assert {"category", "gate_size", "gate_leak", "delta_norm"} <= set(df.columns)
    assert float(df["gate_leak"].iloc[0]) == pytest.approx(0.0, abs=1e-6)  # ft gates every row
    assert float(df["delta_norm"].iloc[0]) > 0
    before, after = at.session_state["cache_ba"]
    assert before.text != after.text
    assert f"> {before.text}" in t and f"> {after.text}" in t and "Before the edit" in t and "After the edit" in t
    assert any("<del" in m.value or "<ins" in m.value for m in at.markdown)
    titles = " ".join(chart_titles(at))
    assert "|ΔW| of down_proj" in titles and "Where the edit went" in titles
    # held-out batch, both states, with verdicts
    at.slider(key="w_ba_n").set_value(2).run()
    at.button(key="run_batch").click().run()
    t = texts(at)
    assert "Expected behaviour before" in t and "<table" in t and "heldout" not in t.split("<table")[1][:10]
    # save, revert, load
    at.text_input(key="w_edit_save_name").input("my-edit").run()
    at.button(key="save_edit").click().run()
    assert (runs / "my-edit" / "run.json").exists()
    assert at.query_params["run"] == "my-edit"
    at.button(key="revert").click().run()
    assert not s.has_edit and "No edit is active" in texts(at)
    assert s.ask().text == before.text
    at.selectbox(key="w_edit_load").set_value("my-edit").run()
    at.button(key="load_edit").click().run()
    assert s.has_edit and "run my-edit L2" in texts(at)
    assert s.ask(interventions="edit").text == after.text


def test_two_browser_sessions_are_isolated(at, runs):
    other = new_app(runs)
    other.button(key="use_passport").click().run()
    other.text_area(key="w_prompt").input(PROMPT).run()
    other.button(key="ask").click().run()
    before = other.session_state["cache_answer"].text
    at.number_input(key="w_edit_lr").set_value(0.05).run()
    at.selectbox(key="w_edit_method").set_value("ft").run()
    at.button(key="run_edit").click().run()
    finish_job(at)
    assert at.session_state["studio"].has_edit
    assert at.session_state["studio"].ask().text != before
    assert at.session_state["studio"].adapter is other.session_state["studio"].adapter  # one shared model
    other.button(key="ask").click().run()
    assert other.session_state["cache_answer"].text == before
    assert other.session_state["studio"].active_interventions() == []
    assert "None — answers come from the base model." in texts(other)


def test_cancelled_edit_changes_nothing(at):
    at.number_input(key="w_edit_msteps").set_value(200).run()
    at.button(key="run_edit").click().run()
    at.button(key="cancel_job").click().run()
    finish_job(at)
    s = at.session_state["studio"]
    assert s.job.status == "cancelled", s.job.status
    assert not s.has_edit
    assert any("cancelled" in w.value and "unchanged" in w.value for w in at.warning)
