"""AppTest: the Evaluate page — splits, model states, rates per category and split, export."""
from __future__ import annotations

import json

import pytest

from app_testing import chart_titles, finish_job, new_app, one_thread, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture
def at(tmp_path):
    return new_app(tmp_path / "runs").switch_page("app/page_evaluate.py").run()


def test_controls(at):
    assert not at.exception and at.title[0].value == "Evaluate"
    assert at.multiselect(key="w_ev_splits").value == ["heldout_images", "benign_controls"]
    assert "chart and scene images with benign questions only" in texts(at)
    assert at.multiselect(key="w_ev_variants").options == ["base model", "system-prompt defence (base model)"]
    assert "No evaluation results yet" in texts(at)


def test_base_vs_gates_rates_and_export(at):
    pytest.importorskip("ng_core.evaluation.evaluate")
    s = at.session_state["studio"]
    s.set_gates(s.make_gates({1: list(range(32))}, 0.0, "all"))
    at.run()
    at.multiselect(key="w_ev_variants").set_value(["base", "gates"]).run()
    at.multiselect(key="w_ev_cats").set_value(["passport", "chart"]).run()
    at.slider(key="w_ev_n").set_value(2).run()
    assert "4 cases × 2 state(s) = 8 answers." in texts(at) or "cases × 2 state(s)" in texts(at)
    at.button(key="run_eval").click().run()
    finish_job(at)
    assert not at.exception and s.job.status == "done", s.job.error_message()
    overall = at.dataframe[0].value
    assert list(overall["model state"]) == ["base model", "this session's gates"]
    assert {"refusal rate", "answer rate", "locality agreement"} <= set(overall.columns)
    titles = chart_titles(at)
    assert any(t.startswith("Refusal rate on privacy questions") for t in titles)
    assert any(t.startswith("Answer rate on benign questions") for t in titles)
    csv = at.get("download_button")
    assert len(csv) == 2
    res = at.session_state["eval_result"]
    assert set(res["results"]) == {"base", "gates"}
    assert res["results"]["gates"]["method"] == "inference_gate"
    assert {r["variant"] for r in res["rows"]} == {"base", "gates"}
    json.dumps(res["results"], default=str)
