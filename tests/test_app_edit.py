"""AppTest: the Edit page — run with live status, before/after, ΔW view, revert, save, load; two sessions."""
from __future__ import annotations

import pytest

from app.labels import PAIR_VARIANTS
from app_testing import chart_titles, finish_job, new_app, one_thread, plotly_specs, texts

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
    from ng_core.method.registry import GATE_SCOPES

    assert not at.exception and at.title[0].value == "Edit"
    t = texts(at)
    for help_text in GATE_SCOPES.values():
        assert help_text in t
    assert "No edit is active" in t
    assert at.selectbox(key="w_edit_layer").value == 2
    assert at.selectbox(key="w_edit_method").options[0].startswith("Neural Gate")


def test_a_registered_method_is_on_the_page(toy_method, at):
    """The method list reads the records: a method registered later is a choice, its record sets the controls."""
    box = at.selectbox(key="w_edit_method")
    assert "First rows — a toy gate of the tests" in box.options
    assert box.options[:2] == ["Neural Gate — gradients gated to the privacy neurons",
                               "Fine-tuning baseline — no gate (every row of down_proj)"]
    assert at.checkbox(key="w_edit_control").value  # the learned gate takes a random-gate control
    box.set_value("first_rows").run()
    assert not at.exception and not at.radio(key="w_edit_scope").disabled  # a gated method: the scope applies
    assert not any(c.key == "w_edit_control" for c in at.checkbox)  # a control itself takes no control


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
    # the session's report: one self-contained HTML file
    at.button(key="edit_report_build").click().run()
    doc = at.session_state["edit_report"]
    assert "<script src" not in doc and "Where the edit went" in doc and s.adapter.fingerprint() in doc
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


def test_edit_of_a_page_that_stopped_polling_is_cancelled(at):
    s = at.session_state["studio"]
    s.stale_after = 0.2  # the watchdog's limit, short for the test (default 60 s)
    at.number_input(key="w_edit_msteps").set_value(200).run()
    at.button(key="run_edit").click().run()
    finish_job(at)  # nobody reruns the page while the job runs: as if the tab were closed
    assert s.job.status == "cancelled" and s.job.stale
    assert not s.has_edit
    assert any("stopped polling" in w.value and "unchanged" in w.value for w in at.warning)


def test_edit_with_random_gate_control_side_by_side(at):
    assert at.checkbox(key="w_edit_control").value is True  # on by default for Neural Gate
    at.selectbox(key="w_edit_method").set_value("ft").run()
    assert not [c for c in at.checkbox if c.key == "w_edit_control"]  # meaningless for fine-tuning
    at.selectbox(key="w_edit_method").set_value("neural_gate").run()
    at.number_input(key="w_edit_lr").set_value(0.05).run()
    at.button(key="run_edit").click().run()
    s = at.session_state["studio"]
    finish_job(at)
    assert not at.exception and s.job.status == "done", s.job.error_message()
    pair = s.edit_pair
    assert pair is not None and s.pair_applied == "learned" and s.edit_run is pair.learned
    t = texts(at)
    assert "Learned gate vs random-gate control" in t
    assert f"Applied in this session now:** {PAIR_VARIANTS['learned']}" in t
    # both columns, with their diagnostics as numbers and their loss curves
    assert PAIR_VARIANTS["learned"] in t and PAIR_VARIANTS["control"] in t
    metrics = [(m.label, m.value) for m in at.metric]
    for which in ("learned", "control"):
        d = pair.diagnostics(which)
        assert ("Gate size", str(d["gate_size"]["passport"])) in metrics
        assert ("Gate leak", f"{d['gate_leak']:.3f}") in metrics
        assert ("Subject-position gradient share", f"{d['subject_grad_share']:.3f}") in metrics
    titles = chart_titles(at)
    for which in ("learned", "control"):  # one line per edit: their steps are never joined into one line
        assert f"Loss per step — {which} — loss, one line per edit" in titles
    # the current input answered in the three states
    answers = at.session_state["cache_pair"]
    assert list(answers) == ["unedited", "learned", "control"]
    for v, a in answers.items():
        assert f"> {a.text}" in t
    # the held-out batch: answers, verdicts and rates per state
    at.button(key="run_pair_batch").click().run()
    res = at.session_state["cache_pair_batch"]
    metrics = dict((m.label, m.value) for m in at.metric)
    for v, r in res["rates"].items():
        assert r["n_refuse"] == r["n_answer"] == 2
        assert metrics[f"Privacy refusal rate · {v}"] == f"{r['refusal_rate']:.0%} ({round(r['refusal_rate'] * 2)}/2)"
        assert metrics[f"Benign answer rate · {v}"].endswith("/2)")
    assert any("<table" in m.value and res["answers"]["control"][0].text.split()[0] in m.value for m in at.markdown
               if res["answers"]["control"][0].text.split())
    # switch the applied edit to the control, and back
    at.button(key="pair_use_control").click().run()
    assert s.pair_applied == "control" and f"Applied in this session now:** {PAIR_VARIANTS['control']}" in texts(at)
    assert "random-gate control (random_gate" in texts(at)
    at.button(key="pair_use_learned").click().run()
    assert s.pair_applied == "learned"


def test_tradeoff_curve_section(at, tmp_path, monkeypatch):
    import json

    s = at.session_state["studio"]
    assert "Trade-off curve" in [e.label for e in at.expander]
    assert at.text_input(key="w_to_values_lr").value == "0.000333, 0.001, 0.003"  # around the preset's lr
    at.text_input(key="w_to_values_lr").input("0.01, 0.3").run()
    at.number_input(key="w_to_n").set_value(1).run()
    at.button(key="run_tradeoff").click().run()
    assert any("A long job: 4 full edits" in w.value for w in at.warning)  # a warning before it starts
    at.button(key="confirm_tradeoff_yes").click().run()
    assert s.job.kind == "tradeoff"
    finish_job(at)
    assert not at.exception and s.job.status == "done", s.job.error_message()
    res = s.tradeoff
    assert [(p["value"], p["method"]) for p in res["points"]] == [
        (0.01, "neural_gate"), (0.01, "random_gate"), (0.3, "neural_gate"), (0.3, "random_gate")]
    assert res["n_cases"] == 2 and not s.has_edit  # the sweep never touches the session's edit
    assert "Trade-off curve finished" in texts(at)
    spec = next(sp for sp in plotly_specs(at) if "Trade-off over lr" in str(sp["layout"].get("title")))
    traces = {t["name"]: t for t in spec["data"]}
    assert set(traces) == {"learned gate (Neural Gate)", "random gate (control)", "unedited"}
    learned = traces["learned gate (Neural Gate)"]
    assert learned["text"] == ["lr=0.01", "lr=0.3"]
    assert learned["x"] == [p["benign_answer_rate"] for p in res["points"] if p["method"] == "neural_gate"]
    assert learned["y"] == [p["refusal_rate"] for p in res["points"] if p["method"] == "neural_gate"]
    assert spec["layout"]["xaxis"]["title"]["text"] == "benign answer rate"
    assert spec["layout"]["yaxis"]["title"]["text"] == "privacy refusal rate"
    df = next(d.value for d in at.dataframe if "benign_answer_rate" in d.value.columns)
    assert list(df["method"]) == ["unedited", "neural_gate", "random_gate", "neural_gate", "random_gate"]
    # a saved trade-off loads and replaces the plot
    saved = dict(res, param="steps", values=[1, 5],
                 points=[dict(p, value=v) for p, v in zip(res["points"], (1, 1, 5, 5))])
    at.file_uploader(key="w_to_upload").set_value(("t.json", json.dumps(saved).encode(), "application/json")).run()
    assert not at.exception and s.tradeoff["param"] == "steps"
    assert any("Trade-off over steps" in str(sp["layout"].get("title")) for sp in plotly_specs(at))
    at.file_uploader(key="w_to_upload").set_value(("bad.json", b'{"format": "x"}', "application/json")).run()
    assert any("not a trade-off result" in e.value for e in at.error)
    # the curve `ng report` leaves in its workdir loads with one click; another model's curve is flagged
    rep = tmp_path / "report"
    rep.mkdir()
    other = dict(res, model={"id": "other", "fingerprint": "0123456789abcdef"}, source="ng report (test)")
    (rep / "tradeoff.json").write_text(json.dumps(other))
    monkeypatch.setenv("NG_REPORT_DIR", str(rep))
    at.run()
    at.button(key="load_report_tradeoff").click().run()
    assert not at.exception and s.tradeoff["model"]["id"] == "other"
    assert any("made on another model" in w.value for w in at.warning)
    assert "from ng report (test)" in texts(at)
