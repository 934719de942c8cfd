"""AppTest: the Edit page draws learned vs random over gate size and over layer from a sweep folder."""
from __future__ import annotations

import json

import pytest
from app_testing import new_app, one_thread, plotly_specs, texts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_threads = pytest.fixture(autouse=True, scope="module")(one_thread)


def fake_sweep(folder, model="tiny-random"):
    """A sweep.json with a gate-size axis (3 settings at layer 2) and a layer axis (layers 0..3)."""
    from ng_core.evaluation.sweep import assemble
    from ng_core.evaluation.sweep_grid import Setting, SweepConfig
    from ng_core.evaluation.sweep_numbers import PARTS, aggregate, score
    from ng_core.method.registry import sweep_gates

    settings = [Setting(k, None, 2, "subject_position") for k in (0.05, 0.2)]
    settings += [Setting(None, 0.3, la, "subject_position") for la in (0, 1, 2, 3)]
    cells = {}
    for i, s in enumerate(settings):
        per = {}
        for j, g in enumerate(m.name for m in sweep_gates()):
            per[g] = {}
            for sd in (0, 1, 2):
                m = {"leak_rate": 0.1 * j, "refusal_heldout_images": 0.9 - 0.2 * j + 0.01 * sd + 0.02 * i,
                     "refusal_heldout_templates": 0.5, "refusal_unseen_categories": 0.4, "benign_answered": 0.8,
                     "general_answered": 0.95}
                m["score"] = score(m)
                per[g][sd] = {p: dict(m) for p in PARTS}
        cells[i] = {"setting": s.to_dict(), "aggregate": aggregate(per), "gate_size": {"mean": 10.0 + i, "sd": 0.0},
                    "meta": {"compute_seconds": 1.0, "versions": {"torch": "x"}, "machine": "test", "mask": {"steps": 1},
                             "edit": {"lr": 1e-3, "steps": 1, "questions_per_image": 1}, "train_images": {"passport": 1},
                             "n_cases": 10, "seed_records": {}, "preset": "tiny-random"}}
        if i == 1:  # one setting with the gates' consistency across seeds (sweeps made before it have none)
            cells[i]["consistency"] = {g: {"passport/L2": {"overlap": v, "chance": 0.2, "pairs": 3, "same_image_pairs": 0,
                                                          "min": v, "max": v}}
                                       for g, v in (("neural_gate", 0.5), ("random_gate", 0.2))}
    res = assemble(SweepConfig(model=model, seeds=(0, 1, 2)), settings, cells, "0123456789abcdef", 1.0, model)
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(res))
    return res


def test_edit_page_sweep_section(tmp_path, monkeypatch):
    root = tmp_path / "sweeps"
    fake_sweep(root / "tiny")
    fake_sweep(root / "other", model="ng-mini-llava")  # another model's sweep is not offered
    monkeypatch.setenv("NG_SWEEP_DIR", str(root))
    at = new_app(tmp_path / "runs")
    at.switch_page("app/page_edit.py").run()
    assert not at.exception
    assert any("Gate size × layer sweep" in e.label for e in at.expander)
    specs = plotly_specs(at)
    titles = [str(sp["layout"].get("title", {}).get("text", "")) for sp in specs]
    gate = specs[next(i for i, t in enumerate(titles) if "over gate size" in t)]
    layer = specs[next(i for i, t in enumerate(titles) if "over layer" in t)]
    names = [t["name"] for t in gate["data"]]
    assert names == ["learned gate", "random gate", "complement gate"]
    assert gate["data"][0]["x"] == ["top-k 5% (10 rows)", "top-k 20% (11 rows)", "consensus > 0.3 (14 rows)"]
    assert layer["data"][0]["x"] == ["L0", "L1", "L2", "L3"]
    assert gate["data"][0]["y"][0] == pytest.approx(0.91) and gate["data"][1]["y"][0] == pytest.approx(0.71)
    assert "In none of" in texts(at) or "beats a random gate" in texts(at)
    assert any("measured on other weights of tiny-random" in w.value for w in at.warning)  # fake fingerprint
    table = at.dataframe[0].value  # learned vs random, seed by seed: every seed better on held-out images
    assert list(table["seeds better–equal–worse"]) == ["3–0–0"] * 6 and list(table["sign test p"]) == [0.125] * 6
    cons = at.dataframe[1].value  # consistency: only the setting that has it, learned 2.5x chance
    assert list(cons["setting"]) == ["L2__topk0.2__subject_position"]
    assert list(cons["learned: rows shared (%)"]) == [50.0] and list(cons["learned / chance"]) == [2.5]
    at.selectbox(key="w_sweep_metric").set_value("benign_answered").run()
    assert not at.exception
    assert any("benign answered over layer" in str(sp["layout"]["title"]["text"]) for sp in plotly_specs(at))


def test_edit_page_without_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("NG_SWEEP_DIR", str(tmp_path / "none"))
    at = new_app(tmp_path / "runs")
    at.switch_page("app/page_edit.py").run()
    assert not at.exception and "No `ng sweep` result for tiny-random" in texts(at)
