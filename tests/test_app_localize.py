"""AppTest: the Localize page — run, live status, heatmap, reselect without rerun, neuron detail, URL state."""
from __future__ import annotations

import json

import pytest

from app_testing import chart_titles, finish_job, new_app, one_thread, plotly_charts, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture
def at(tmp_path):
    at = new_app(tmp_path / "runs")
    at.button(key="use_passport").click().run()
    return at.switch_page("app/page_localize.py").run()


def _metric(at, label):
    return {m.label: m.value for m in at.metric}[label]


def test_empty_state_and_controls(at):
    assert not at.exception
    assert at.title[0].value == "Localize privacy neurons"
    assert "No localization yet" in texts(at)
    assert at.radio(key="w_loc_method").options == ["Learned mask (Neural Gate Stages A+B)", "Gradient × activation",
                                                    "Activation contrast"]
    assert at.multiselect(key="w_loc_layers").value == [2]  # the tiny preset's layer


def test_learned_mask_all_layers_heatmap_and_reselect(at):
    at.button(key="loc_all_layers").click().run()
    assert at.multiselect(key="w_loc_layers").value == [0, 1, 2, 3]
    at.button(key="run_localize").click().run()
    s = at.session_state["studio"]
    job = s.job
    assert job is not None and job.kind == "localize"
    finish_job(at)
    assert not at.exception and job.status == "done"
    assert "Localization finished" in texts(at)
    figs = plotly_charts(at)
    heat = [f for f in figs if '"type":"heatmap"' in f.proto.spec.replace(" ", "")]
    assert heat, "no heatmap"
    spec = heat[0].proto.spec
    hover = json.loads(spec)["data"][0]["hovertemplate"]
    assert "layer · selected: %{y}" in hover and "neuron %{x}" in hover and "frequency" in hover and "score" in hover
    n0 = _metric(at, "Selected neurons")
    labels = json.loads(spec)["data"][0]["y"]  # one row per layer, labelled with its selected count
    assert [l.split(" · ")[0] for l in labels] == ["L0", "L1", "L2", "L3"]
    assert sum(int(l.split(" · ")[1]) for l in labels) == int(n0.replace(",", ""))
    at.toggle(key="w_view_only_sel").set_value(True).run()
    assert "selected neurons only" in " ".join(chart_titles(at))
    # reselect without rerunning: loosest rule -> more neurons, and no new job
    at.slider(key="w_view_pv").set_value(1.0).run()
    at.slider(key="w_view_thr").set_value(0.0).run()
    n1 = _metric(at, "Selected neurons")
    assert int(n1.replace(",", "")) >= int(n0.replace(",", "")) and int(n1.replace(",", "")) > 0
    assert s.job is job
    assert "tanh(m) < 1" in texts(at)
    at.toggle(key="w_view_use_topk").set_value(True).run()
    at.slider(key="w_view_topk").set_value(0.1).run()
    assert "the 10% smallest m" in texts(at)
    # top-k table and neuron detail, and the URL
    df = at.dataframe[0].value
    assert list(df.columns) == ["layer", "neuron", "score", "frequency", "selected"]
    assert df["score"].is_monotonic_decreasing
    at.selectbox(key="w_detail_layer").set_value(1).run()
    at.number_input(key="w_detail_neuron").set_value(7).run()
    assert "Mean on privacy prompts" not in texts(at)  # opening the page runs no prompts: on demand
    at.button(key="loc_show_acts").click().run()
    t = texts(at)
    assert "L1 neuron 7: score" in t and "Mean on privacy prompts" in t
    assert at.query_params["layer"] == "1" and at.query_params["neuron"] == "7"
    assert any("Activation of neuron 7 at layer 1" in t for t in chart_titles(at))
    # save it as a run
    at.text_input(key="w_loc_save_name").input("loc-test").run()
    at.button(key="save_localization").click().run()
    assert any("Saved to" in x.value for x in at.success)
    assert at.query_params["run"] == "loc-test"


@pytest.mark.parametrize("method", ["contrast", "gradxact"])
def test_cheap_scores_with_ffn_units(at, method):
    at.radio(key="w_loc_method").set_value(method).run()
    at.multiselect(key="w_loc_layers").set_value([1, 2, 3]).run()
    at.button(key="run_localize").click().run()
    finish_job(at)
    assert not at.exception and at.session_state["studio"].job.status == "done", texts(at)
    assert at.selectbox(key="w_view_unit").options == ["residual dims (Neural Gate)", "FFN neurons"]
    at.selectbox(key="w_view_unit").set_value("ffn").run()
    assert "FFN neurons (down_proj inputs)" in " ".join(chart_titles(at))
    key = [s.key for s in at.slider if s.key.startswith("w_view_k_")][0]
    at.slider(key=key).set_value(3).run()
    assert _metric(at, "Selected neurons") in {str(n) for n in range(10)}  # at most 3 per layer x 3 layers


def test_current_image_source(at):
    at.radio(key="w_loc_source").set_value("Current image and prompt").run()
    assert "Privacy question:" in texts(at)
    at.button(key="run_localize").click().run()
    finish_job(at)
    assert at.session_state["studio"].job.status == "done"
    assert at.selectbox(key="w_view_cat").options == ["all categories (union)", "current"]


def test_cancel_leaves_no_localization(at):
    at.number_input(key="w_loc_steps").set_value(200).run()
    at.button(key="run_localize").click().run()
    s = at.session_state["studio"]
    assert "Cancel" in [b.label for b in at.button]
    at.button(key="cancel_job").click().run()
    finish_job(at)
    assert s.job.status == "cancelled"
    assert any("cancelled" in w.value and "unchanged" in w.value for w in at.warning)
    assert s.localization is None and "No localization yet" in texts(at)
