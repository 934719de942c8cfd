"""AppTest: the Runs page — list, inspect, load, compare, download, delete; ?run= deep links."""
from __future__ import annotations

from dataclasses import replace

import pytest

from app_testing import new_app, one_thread, shared_data_dir, texts
from ng_core.studio import StudioSession, sample_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture
def runs(tmp_path, tiny):
    """Two saved runs made with the core API: an edit and a localization."""
    root = tmp_path / "runs"
    s = StudioSession(tiny, runs_dir=root)
    ds = sample_dataset(shared_data_dir())
    recs = {"passport": ds.records("passport", "train")[:1]}
    p = s.preset
    j = s.start_edit(recs, p.layer, p.mask, replace(p.edit, method="ft", lr=0.05))
    assert j.wait(120) and j.status == "done", j.error_message()
    s.save_edit("edit-a")
    j = s.start_localize(recs, [1, 2], p.mask)
    assert j.wait(120) and j.status == "done"
    s.save_run(s.localization, "loc-b")
    return root


def test_empty_folder(tmp_path):
    at = new_app(tmp_path / "none").switch_page("app/page_runs.py").run()
    assert "No run bundles yet" in texts(at)


def test_list_inspect_load_compare_delete(runs):
    at = new_app(runs).switch_page("app/page_runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["edit-a", "loc-b"] and list(table["kind"]) == ["edit", "localize"]
    at.selectbox(key="w_run_pick").set_value("edit-a").run()
    m = {x.label: x.value for x in at.metric}
    assert m["Kind"] == "edit" and m["Model"] == "tiny-random"
    assert at.query_params["run"] == "edit-a"
    assert at.get("download_button")[0].proto.label == "Download (zip)"
    at.button(key="load_run").click().run()
    s = at.session_state["studio"]
    assert s.has_edit and "run edit-a on L2" in texts(at)
    # compare: only differing rows by default
    cmp = at.dataframe[-1].value
    assert list(cmp.columns) == ["edit-a", "loc-b"] and "kind" in cmp.index
    assert "config.edit.lr" in cmp.index and cmp.loc["config.edit.lr", "loc-b"] == "—"  # only in the edit
    assert "config.mask.lr" not in cmp.index  # the same in both
    at.toggle(key="w_cmp_diff").set_value(False).run()
    assert len(at.dataframe[-1].value) > len(cmp)
    # runs this session did not save (here: written by the CLI) are read-only
    at.selectbox(key="w_run_pick").set_value("loc-b").run()
    assert at.button(key="delete_run").disabled and at.checkbox(key="w_confirm_delete").disabled
    assert "read-only here" in texts(at)


def test_delete_needs_a_confirmation_and_ownership(runs, monkeypatch):
    monkeypatch.setenv("NG_DELETE_ANY_RUN", "1")  # a single-user machine
    at = new_app(runs).switch_page("app/page_runs.py").run()
    at.selectbox(key="w_run_pick").set_value("loc-b").run()
    assert at.button(key="delete_run").disabled
    at.checkbox(key="w_confirm_delete").check().run()
    at.button(key="delete_run").click().run()
    assert not (runs / "loc-b").exists()
    assert list(at.dataframe[0].value["name"]) == ["edit-a"]


def test_deep_link_opens_the_run_and_neuron(runs):
    at = new_app(runs, query={"run": "edit-a"})
    s = at.session_state["studio"]
    assert s.has_edit and s.edit_run.path.name == "edit-a"
    at = new_app(runs, query={"run": "loc-b", "layer": "2", "neuron": "5"})
    s = at.session_state["studio"]
    assert s.localization.path.name == "loc-b" and not s.has_edit
    assert at.session_state["sel_layer"] == 2 and at.session_state["sel_neuron"] == 5
    at.switch_page("app/page_localize.py").run()
    assert at.selectbox(key="w_detail_layer").value == 2 and at.number_input(key="w_detail_neuron").value == 5
    assert "L2 neuron 5: score" in texts(at)
    assert at.query_params["run"] == "loc-b" and at.query_params["neuron"] == "5"
    bad = new_app(runs, query={"run": "missing"})
    assert any("cannot be loaded" in w.value for w in bad.warning)


def test_an_edit_run_without_a_weight_edit_is_refused(tmp_path, tiny):
    """Shown as broken with one line, and never loaded as "no edit" into the session."""
    import torch
    from safetensors.torch import save_file

    from ng_core.method.bundle import Run

    r = Run.new("edit", tiny, {"layer": 2}, {"seed": 0})
    r.tensors["deltas"]["L2"] = torch.zeros(tiny.hidden_size, tiny.ffn_size)
    p = r.save(tmp_path / "runs" / "empty-edit")
    save_file({}, str(p / "deltas.safetensors"))
    at = new_app(tmp_path / "runs").switch_page("app/page_runs.py").run()
    at.selectbox(key="w_run_pick").set_value("empty-edit").run()
    assert not at.exception
    err = " ".join(e.value for e in at.error)
    assert "empty-edit is broken and cannot be loaded" in err and "no weight edit" in err
    assert not [b for b in at.button if b.key == "load_run"] and not at.session_state["studio"].has_edit
