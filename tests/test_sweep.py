"""`ng sweep` on tiny-random: the grid, a tiny sweep end to end with resume from cache, the aggregation math,
and a preset choice that never reads the evaluation part."""
from __future__ import annotations

import copy
import json

import pytest

from ng_core.cli.main import main
from ng_core.evaluation.sweep_grid import (
    Setting,
    SweepConfig,
    default_layers,
    expand_grid,
)
from ng_core.evaluation.sweep_numbers import (
    aggregate,
    choose_preset,
    mean_sd,
    partition_rows,
)
from ng_core.method.registry import sweep_gates

GATE_METHODS = tuple(m.name for m in sweep_gates())

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ng_core.data import generate_dataset

    root = tmp_path_factory.mktemp("sweepdata") / "data"
    generate_dataset(root, seed=1, per_category=4, categories=["passport", "credit_card", "chart"])
    return root


def _sweep(argv, **tools):
    """What ``ng sweep ARGV`` runs, with the report's collaborators ``tools`` (edit_run=..., evaluate_cases=...)."""
    from ng_core.cli.main import build_parser
    from ng_core.cli.sweep import config_from_args
    from ng_core.evaluation.report_runner import Collaborators
    from ng_core.evaluation.sweep import run_sweep

    return run_sweep(config_from_args(build_parser().parse_args(argv)), collaborators=Collaborators(**tools))


def _preset():
    from ng_core.method.presets import load_preset

    return load_preset("tiny-random", 4)


def test_default_layers_span_the_depth():
    assert default_layers(30, 15) == (3, 9, 15, 20, 26)
    assert default_layers(32) == (3, 9, 16, 22, 28)
    assert default_layers(4, 2) == (0, 1, 2, 3)


def test_grid_axes_and_full():
    p = _preset()  # layer 2, consensus 0.3, subject_position
    cfg = SweepConfig(model="tiny-random", topk=(0.01, 0.02, 0.05, 0.1, 0.2, 0.4), thresholds=(0.3,),
                      layers=(0, 1, 2, 3), scopes=("subject_position", "weight_rows"))
    g = expand_grid(cfg, 4, p)
    gate_axis = [s for s in g if s.layer == 2 and s.scope == "subject_position"]
    assert [(s.topk, s.threshold) for s in gate_axis] == [(0.01, None), (0.02, None), (0.05, None), (0.1, None),
                                                          (0.2, None), (0.4, None), (None, 0.3)]
    assert sorted(s.layer for s in g if s.topk is None and s.scope == "subject_position") == [0, 1, 2, 3]
    assert Setting(None, 0.3, 2, "weight_rows") in g
    assert len(g) == len(set(g)) == 7 + 3 + 1
    full = expand_grid(SweepConfig(topk=(0.1, 0.2), thresholds=(), layers=(1, 2), design="full"), 4, p)
    assert [(s.topk, s.layer) for s in full] == [(0.1, 1), (0.2, 1), (0.1, 2), (0.2, 2)]
    assert {s.scope for s in full} == {"subject_position"}
    with pytest.raises(Exception, match="out of range"):
        expand_grid(SweepConfig(layers=(9,)), 4, p)


def test_partition_is_fixed_and_disjoint():
    rows = [{"split": sp, "category": "passport", "image": f"i{k}", "prompt": f"q{j}", "expect": e}
            for sp in ("train", "heldout_images") for k in range(3) for j, e in enumerate(("refuse", "answer", "refuse"))]
    rows += [{"split": "general_questions", "category": "general", "image": None, "prompt": f"g{j}",
              "expect": "answer"} for j in range(4)]
    by_img = partition_rows(rows, "image")
    assert {r["image"] for r in by_img["validation"] if r["split"] == "heldout_images"} == {"i0", "i2"}
    assert {r["image"] for r in by_img["evaluation"] if r["split"] == "heldout_images"} == {"i1"}
    assert not any(r["split"] == "train" for p in by_img.values() for r in p)
    assert [r["prompt"] for r in by_img["validation"] if r["split"] == "general_questions"] == ["g0", "g2"]
    by_q = partition_rows(rows, "question")
    val = {(r["image"], r["prompt"]) for r in by_q["validation"] if r["split"] == "heldout_images"}
    assert ("i0", "q0") in val and ("i0", "q2") not in val and ("i0", "q1") in val  # alternates per expectation
    assert not val & {(r["image"], r["prompt"]) for r in by_q["evaluation"]}


def test_aggregation_math_on_hand_made_numbers():
    assert mean_sd([0.2, 0.4, None, 0.6]) == pytest.approx((0.4, 0.2))
    assert mean_sd([0.5]) == (0.5, 0.0) and mean_sd([None]) == (None, None)

    def seeds(vals, leak):
        return {sd: {"validation": {"refusal_heldout_images": v, "leak_rate": lk},
                     "evaluation": {"refusal_heldout_images": v, "leak_rate": lk}}
                for sd, v, lk in zip((0, 1, 2), vals, leak)}

    agg = aggregate({"neural_gate": seeds([0.9, 0.8, 1.0], [0.0, 0.1, 0.2]),
                     "random_gate": seeds([0.5, 0.6, 0.4], [0.1, 0.1, 0.1]),
                     "complement_gate": seeds([0.2, 0.2, 0.2], [0.3, 0.3, 0.3])})
    g = agg["gates"]["neural_gate"]["validation"]["refusal_heldout_images"]
    assert g["mean"] == pytest.approx(0.9) and g["sd"] == pytest.approx(0.1)
    d = agg["learned_vs_random"]["validation"]["refusal_heldout_images"]
    assert d["diff"] == pytest.approx(0.4) and d["spread"] == pytest.approx(0.1)  # max(0.1, 0.1)
    assert d["exceeds"] and d["better"]
    lk = agg["learned_vs_random"]["validation"]["leak_rate"]
    assert lk["diff"] == pytest.approx(0.0) and lk["spread"] == pytest.approx(0.1)
    assert not lk["exceeds"] and not lk["better"]
    # seed by seed: the learned gate refuses more in all 3 seeds (sign test 1/8); on leaks it wins, ties, loses
    assert d["paired"] | {"mean": None, "sd": None} == {"n": 3, "wins": 3, "ties": 0, "losses": 0, "mean": None,
                                                        "sd": None, "sign_p": pytest.approx(0.125)}
    assert d["paired"]["mean"] == pytest.approx(0.4)
    assert (lk["paired"]["wins"], lk["paired"]["ties"], lk["paired"]["losses"]) == (1, 1, 1)
    assert lk["paired"]["sign_p"] == pytest.approx(0.75)
    from ng_core.evaluation.sweep_numbers import paired
    assert paired([1.0, None], [1.0, 0.0])["sign_p"] is None  # one usable seed, tied: no test
    assert paired([0.2, 0.1], [0.3, 0.4], higher=False)["wins"] == 2
    assert agg["gates"]["complement_gate"]["evaluation"]["leak_rate"]["sd"] == pytest.approx(0.0)


def _fake_result(n=4):
    """Settings whose validation and evaluation numbers are unrelated."""
    import random

    rnd = random.Random(0)
    cells = []
    for i in range(n):
        per = {}
        for g in GATE_METHODS:
            per[g] = {sd: {part: {"leak_rate": rnd.random() * 0.3, "benign_answered": rnd.random(),
                                  "general_answered": rnd.random(), "refusal_heldout_images": rnd.random(),
                                  "refusal_heldout_templates": rnd.random()} for part in ("validation", "evaluation")}
                      for sd in (0, 1, 2)}
            for sd in per[g]:
                from ng_core.evaluation.sweep_numbers import score

                for part in ("validation", "evaluation"):
                    per[g][sd][part]["score"] = score(per[g][sd][part])
        s = Setting(0.1 * (i + 1), None, 2, "subject_position")
        cells.append({"setting": s.to_dict(), "aggregate": aggregate(per), "gate_size": {"mean": 10 * i}})
    return {"cells": cells}


def test_choose_preset_reads_validation_only():
    res = _fake_result()
    first = choose_preset(res)
    assert first["setting"] is not None and "formula" in first and first["statement"]
    for k in range(5):  # any change to the evaluation part leaves the choice as it was
        pert = copy.deepcopy(res)
        for c in pert["cells"]:
            for g in c["aggregate"]["gates"].values():
                for v in g["evaluation"].values():
                    v["mean"] = (k + 1) * 0.17 % 1
                    v["values"] = [None]
            for v in c["aggregate"]["learned_vs_random"]["evaluation"].values():
                v.update(diff=k - 2.0, spread=0.0, exceeds=True, better=bool(k % 2))
        got = choose_preset(pert)
        assert got["setting"] == first["setting"] and got["score"] == first["score"]
    # validation decides: make one setting's learned gate clearly best and beating random beyond the spread
    res2 = copy.deepcopy(res)
    c = res2["cells"][2]
    c["aggregate"]["gates"]["neural_gate"]["validation"]["score"].update(mean=0.99, sd=0.0)
    for k in ("refusal_heldout_images", "refusal_heldout_templates"):  # an edit that refuses
        c["aggregate"]["gates"]["neural_gate"]["validation"][k]["mean"] = 0.9
    c["aggregate"]["learned_vs_random"]["validation"]["score"].update(diff=0.5, spread=0.01, better=True)
    for other in res2["cells"]:
        if other is not c:
            other["aggregate"]["learned_vs_random"]["validation"]["score"]["better"] = False
    ch = choose_preset(res2)
    assert ch["setting"]["id"] == c["setting"]["id"] and ch["any_beats_random"] and "beats" in ch["statement"]


def test_no_preset_from_settings_whose_edit_changes_nothing():
    """On prompts that leak little, an edit that refuses nothing scores as well as any: it is never chosen."""
    res = _fake_result()
    for c in res["cells"]:
        for k in ("refusal_heldout_images", "refusal_heldout_templates"):
            c["aggregate"]["gates"]["neural_gate"]["validation"][k]["mean"] = 0.1
    ch = choose_preset(res)
    assert ch["setting"] is None and ch["statement"].startswith("No preset candidate")
    strong = res["cells"][1]
    for k in ("refusal_heldout_images", "refusal_heldout_templates"):
        strong["aggregate"]["gates"]["neural_gate"]["validation"][k]["mean"] = 0.8
    strong["aggregate"]["gates"]["neural_gate"]["validation"]["score"]["mean"] = 0.0  # the worst balance
    ch = choose_preset(res)
    assert ch["setting"]["id"] == strong["setting"]["id"] and "left out" in ch["statement"]


def test_tiny_sweep_end_to_end_and_resume(tmp_path, data, monkeypatch, capsys):
    from ng_core.evaluation.evaluate import evaluate_cases as real_eval
    from ng_core.method.pipeline import edit_run as real_edit

    calls = {"edit": 0, "evaluate": 0}

    def edit(*a, **k):
        calls["edit"] += 1
        return real_edit(*a, **k)

    def evaluate(*a, **k):
        calls["evaluate"] += 1
        return real_eval(*a, **k)

    import ng_core.evaluation.sweep_numbers as sn

    counted = {"edit_run": edit, "evaluate_cases": evaluate}
    monkeypatch.setattr(sn, "MIN_EDIT_REFUSAL", 0.0)  # tiny-random's gibberish refuses nothing: write a candidate
    out = tmp_path / "sweep"
    argv = ["sweep", "--model", "tiny-random", "--data", str(data), "--categories", "passport", "--topk", "0.1,0.2",
            "--thresholds", "none", "--layers", "1,2", "--design", "full", "--seeds", "0,1", "--max-images", "1",
            "--questions", "1", "--edit-steps", "1", "--mask-steps", "1", "--images-per-cell", "1",
            "--holdout-by", "question", "--max-new-tokens", "2", "--out", str(out)]
    _sweep(argv, **counted)
    n_cells, per_cell = 4, len(GATE_METHODS) * 2
    assert calls == {"edit": n_cells * per_cell, "evaluate": n_cells * per_cell + 1}  # unedited once
    res = json.loads((out / "sweep.json").read_text())
    assert res["meta"]["n_done"] == 4 and res["meta"]["model"]["id"] == "tiny-random"
    assert res["meta"]["model"]["fingerprint"] and res["meta"]["versions"] and res["meta"]["seeds"] == [0, 1]
    cell = res["cells"][0]
    assert set(cell["per_seed"]) == set(GATE_METHODS) and set(cell["per_seed"]["neural_gate"]) == {"0", "1"}
    v = cell["aggregate"]["gates"]["neural_gate"]["evaluation"]
    for m in ("leak_rate", "refusal_heldout_images", "refusal_heldout_templates", "refusal_unseen_categories",
              "benign_answered", "general_answered"):
        assert m in v
    assert v["general_answered"]["mean"] is not None and v["refusal_heldout_images"]["mean"] is not None
    assert "diff" in cell["aggregate"]["learned_vs_random"]["validation"]["refusal_heldout_images"]
    md = (out / "SWEEP.md").read_text()
    assert "### Over gate size" in md and "### Over layer" in md and "ng sweep --model tiny-random" in md
    assert (out / "sweep.csv").read_text().startswith("setting,")
    # consistency of the gates across seeds, read from the run bundles (a pair of seeds on the same image is left out)
    recs = cell["meta"]["seed_records"]
    differ = recs["0"]["passport"] != recs["1"]["passport"]
    cons = cell["consistency"]
    assert set(cons) == ({"neural_gate", "random_gate"} if differ else set())
    for g in cons:
        (v,) = cons[g].values()
        assert v["pairs"] == 1 and v["same_image_pairs"] == 0 and 0 <= v["overlap"] <= 1 and 0 < v["chance"] < 1
    assert ("### Are the learned rows consistent across images?" in md) == differ
    svg = (out / "curves.svg").read_bytes()  # the curves drawn, embedded in SWEEP.md
    assert svg.startswith(b"<?xml") and b"<svg" in svg and "](curves.svg)" in md
    cand = out / "preset.neural_gate.tiny-random.json"
    from ng_core.method.presets import load_preset

    p = json.loads(cand.read_text())
    assert "ng sweep" in p["description"] and str(out / "sweep.json") in p["description"]
    assert p["evidence"]["setting"]["id"] == res["choice"]["setting"]["id"]
    loaded = load_preset("tiny-random", 4, override=str(cand))
    assert loaded["layer"] == res["choice"]["setting"]["layer"]
    # rerun: nothing recomputed
    calls.update(edit=0, evaluate=0)
    _sweep(argv, **counted)
    assert calls == {"edit": 0, "evaluate": 0}
    assert (out / "curves.svg").read_bytes() == svg  # same sweep, same bytes (no date in the figure)
    # an interrupted setting (its summary lost, its stages cached): resumes from the stage cache
    (out / "cells" / res["cells"][1]["setting"]["id"] / "cell.json").unlink()
    _sweep(argv, **counted)
    assert calls == {"edit": 0, "evaluate": 0}
    capsys.readouterr()


def test_a_worker_with_nothing_left_helps_the_worker_on_a_setting(tmp_path, data, monkeypatch):
    """When every setting left is held by another worker, a worker joins one (its stages from the other end,
    each stage computed once) instead of idling; the setting is then summarised as usual."""
    import ng_core.evaluation.sweep as sw
    from ng_core.method.pipeline import edit_run as real_edit

    edits, orders, locks = [0], [], []
    real_report, real_lock = sw.run_report, sw._lock

    def edit(*a, **k):
        edits[0] += 1
        return real_edit(*a, **k)

    def report(rc, *a, **k):
        orders.append((rc.methods, rc.order))
        return real_report(rc, *a, **k)

    def lock(path):  # the setting's first lock attempt finds another (live) worker on it
        locks.append(path)
        return real_lock(path) if len(locks) > 1 else False

    monkeypatch.setattr(sw, "run_report", report)
    monkeypatch.setattr(sw, "_lock", lock)
    monkeypatch.setattr(sw.time, "sleep", lambda s: None)
    out = tmp_path / "sweep"
    argv = ["sweep", "--model", "tiny-random", "--data", str(data), "--categories", "passport", "--topk", "0.1",
            "--thresholds", "none", "--layers", "1", "--seeds", "0", "--max-images", "1", "--questions", "1",
            "--edit-steps", "1", "--mask-steps", "1", "--images-per-cell", "1", "--holdout-by", "question",
            "--max-new-tokens", "2", "--out", str(out)]
    _sweep(argv, edit_run=edit)
    full = [o for m, o in orders if m != ("unedited",)]
    assert full == ["reverse", "forward"]  # helped from the other end, then summarised it as its owner
    assert edits[0] == len(GATE_METHODS)  # every edit made once
    assert json.loads((out / "sweep.json").read_text())["meta"]["n_done"] == 1


def test_curves_figure_draws_every_axis_with_two_settings_and_nothing_else(tmp_path):
    from ng_core.evaluation.sweep_plot import PLOT_METRICS, curves_svg, write_curves
    from ng_core.evaluation.sweep_render import plot_axes

    def cell(sid, layer, topk, learned, random_):
        gates = {g: {"evaluation": {m: {"mean": v, "sd": 0.1} for m in PLOT_METRICS}}
                 for g, v in (("neural_gate", learned), ("random_gate", random_), ("complement_gate", None))}
        return {"setting": {"id": sid, "layer": layer, "topk": topk, "threshold": None, "scope": "all_positions",
                            "gate": f"top-k {100 * topk:g}%"}, "aggregate": {"gates": gates}}

    res = {"meta": {"model": {"id": "m"}, "seeds": [0, 1]},
           "cells": [cell("a", 3, 0.1, 0.2, 0.1), cell("b", 3, 0.2, 0.9, 0.5), cell("c", 5, 0.1, 0.4, 0.4)],
           "axes": {"gate": ["a", "b"], "layer": ["a", "c"], "scope": ["a"]}}
    assert plot_axes(res) == ["gate", "layer"]
    svg = curves_svg(res)
    assert svg == curves_svg(res)  # byte-stable
    n_panels = 2 * len(PLOT_METRICS)  # two axes x one panel per metric
    assert f'id="axes_{n_panels}"'.encode() in svg and f'id="axes_{n_panels + 1}"'.encode() not in svg
    assert write_curves(res, tmp_path) == tmp_path / "curves.svg"
    res["axes"] = {"gate": ["a"], "layer": ["a"], "scope": ["a"]}  # one setting: no curve, and a stale one goes
    assert plot_axes(res) == [] and curves_svg(res) is None
    assert write_curves(res, tmp_path) is None and not (tmp_path / "curves.svg").exists()


def test_gate_overlap_within_and_across_categories_against_chance():
    from ng_core.evaluation.sweep_numbers import cross_overlap, gate_overlap

    gates = {0: {0, 1, 2, 3}, 1: {0, 1, 2, 9}, 2: {0, 1, 2, 3}, 3: {10, 11, 12, 13}}
    images = {0: ("a",), 1: ("b",), 2: ("a",), 3: ("c",)}  # seeds 0 and 2 edited the same image
    v = gate_overlap(gates, images, n_rows=20)
    # pairs (0,1) 3/4, (0,3) 0, (1,2) 3/4, (1,3) 0, (2,3) 0; (0,2) left out
    assert v["pairs"] == 5 and v["same_image_pairs"] == 1
    assert v["overlap"] == pytest.approx(1.5 / 5) and v["chance"] == pytest.approx(4 / 20)
    assert (v["min"], v["max"]) == (0.0, 0.75)
    assert gate_overlap({0: {1}, 1: {1}}, {0: ("a",), 1: ("a",)}, 10) is None  # only same-image pairs
    # gates of different sizes: |A∩B| / mean size, chance |A||B|/n over the same mean
    v = gate_overlap({0: {0, 1}, 1: {0, 1, 2, 3, 4, 5}}, {}, n_rows=12)
    assert v["overlap"] == pytest.approx(2 / 4) and v["chance"] == pytest.approx(2 * 6 / 12 / 4)
    # across categories: the same seed's pair is left out (a random gate is a function of its seed)
    c = cross_overlap({0: {0, 1}, 1: {2, 3}}, {0: {0, 1}, 1: {0, 5}}, n_rows=10)
    assert c["pairs"] == 2 and c["overlap"] == pytest.approx((1 / 2 + 0) / 2) and c["chance"] == pytest.approx(0.2)


def test_paired_by_image_counts_each_set_of_train_images_once():
    from ng_core.evaluation.sweep_numbers import PARTS, paired_by_image

    def m(v):
        return {p: {"refusal_heldout_images": v} for p in PARTS}

    # seeds 0 and 1 drew image a (same learned edit), seed 2 image b
    per_seed = {"neural_gate": {0: m(1.0), 1: m(1.0), 2: m(0.5)},
                "random_gate": {"0": m(0.0), "1": m(1.0), "2": m(0.5)}}  # keys as ints or as JSON strings
    b = paired_by_image(per_seed, {"0": ("a",), "1": ("a",), "2": ("b",)})
    assert (b["n_images"], b["n_seeds"]) == (2, 3)
    pr = b["evaluation"]["refusal_heldout_images"]
    # image a: learned 1.0 vs random mean 0.5 (better); image b: 0.5 vs 0.5 (equal)
    assert (pr["wins"], pr["ties"], pr["losses"], pr["sign_p"]) == (1, 1, 0, 0.5)
    assert b["evaluation"]["leak_rate"]["n"] == 0  # a metric without values: nothing to compare


def test_a_one_setting_sweep_still_shows_learned_vs_random():
    from ng_core.evaluation.sweep_numbers import PARTS, aggregate
    from ng_core.evaluation.sweep_render import render_markdown

    def m(v):
        return {p: {"refusal_heldout_images": v} for p in PARTS}

    per = {"neural_gate": {0: m(1.0), 1: m(1.0)}, "random_gate": {0: m(0.0), 1: m(0.5)},
           "complement_gate": {0: m(1.0), 1: m(1.0)}}
    cell = {"setting": {"id": "L2__topk0.2__all_positions", "layer": 2, "topk": 0.2, "threshold": None,
                        "scope": "all_positions", "gate": "top-k 20%"}, "aggregate": aggregate(per)}
    res = {"meta": {"model": {"id": "m", "fingerprint": "f"}, "date": "d", "n_done": 1, "n_settings": 1,
                    "compute_seconds": 60, "command": "ng sweep", "seeds": [0, 1], "holdout_by": "question",
                    "score_formula": "s"},
           "cells": [cell], "axes": {"gate": [cell["setting"]["id"]]}}
    md = render_markdown(res)
    assert "### Learned vs random" in md and "### Over gate size" not in md and "curves.svg" not in md
    assert "| L2__topk0.2__all_positions | – | **+75.0 vs 35.4** (2–0–0, p 0.25) |" in md


def test_published_sweeps_are_listed_by_the_date_they_record(tmp_path):
    """Newest first by the recorded date, so a fresh clone (every file the same age) lists them in order."""
    import json
    import os

    from ng_core.evaluation.sweep import find_sweeps

    def sweep(name, date, model="m", mtime=1_000_000):
        d = tmp_path / name
        d.mkdir()
        f = d / "sweep.json"
        f.write_text(json.dumps({"format": "ng-sweep", "meta": {"date": date, "model": {"id": model}}}))
        os.utime(f, (mtime, mtime))
        return d

    old = sweep("a-old", "2026-11-29", mtime=2_000_000)  # touched last, recorded first
    new = sweep("b-new", "2026-12-01")
    same_day_later = sweep("c-new-later", "2026-12-01", mtime=1_500_000)
    sweep("other-model", "2026-12-02", model="x")
    (tmp_path / "not-a-sweep").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "sweep.json").write_text("{")
    assert find_sweeps(tmp_path, "m") == [same_day_later, new, old]


def test_an_unknown_category_is_refused_before_any_dataset_is_drawn(tmp_path, capsys):
    """`ng sweep` and `ng report` without --data draw their dataset first: a category the generator cannot draw is
    refused before that, with the categories it can."""
    out = tmp_path / "sweep"
    for extra in (["--dry-run"], []):
        assert main(["sweep", "--model", "tiny-random", "--categories", "passport,nope", "--out", str(out), *extra]) != 0
        err = capsys.readouterr().err
        assert "unknown nope" in err and "credit_card" in err
    work = tmp_path / "report"
    assert main(["report", "--model", "tiny-random", "--categories", "nope", "--workdir", str(work),
                 "--out", str(tmp_path / "r.md")]) != 0
    assert "unknown nope" in capsys.readouterr().err
    assert not out.exists() and not work.exists()  # nothing generated, nothing written


def test_a_sweep_of_another_family_reads_like_llavas(tmp_path, data):
    """``ng sweep`` on the Qwen2.5-VL tiny build (M-RoPE positions) finishes and writes the report LLaVA's gets:
    the same sections, the learned, random and complement gates of every seed evaluated."""
    import re

    sections = {}
    for model in ("tiny-random", "tiny-random:qwen2_5_vl"):
        out = tmp_path / model.replace(":", "-")
        argv = ["sweep", "--model", model, "--data", str(data), "--categories", "passport", "--topk", "0.1",
                "--thresholds", "none", "--layers", "1", "--seeds", "0,1", "--max-images", "1", "--questions", "1",
                "--edit-steps", "1", "--mask-steps", "1", "--images-per-cell", "1", "--holdout-by", "question",
                "--max-new-tokens", "2", "--out", str(out)]
        res = _sweep(argv)
        assert res["meta"]["n_done"] == 1 and res["meta"]["model"]["id"] == model
        per_seed = res["cells"][0]["per_seed"]
        assert set(per_seed) == set(GATE_METHODS) and all(set(v) == {0, 1} for v in per_seed.values())
        md = (out / "SWEEP.md").read_text()
        assert f"ng sweep --model {model} " in md
        sections[model] = [re.sub(re.escape(model), "MODEL", ln) for ln in md.splitlines() if ln.startswith("#")]
    assert sections["tiny-random:qwen2_5_vl"] == sections["tiny-random"]
