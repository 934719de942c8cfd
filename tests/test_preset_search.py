"""``ng preset-search``: candidates, the choice rule, grid files, and one search end to end on tiny-random."""
from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace

import pytest

from ng_core.data import generate_dataset, load_dataset
from ng_core.evaluation.preset_search import (GRIDS, Candidate, PresetSearchError, SearchConfig, choose, grid,
                                              mixed_records, search, shortfall, train_set)

pytestmark = pytest.mark.usefixtures("one_thread")


def _summary(refusal: float, harmless_change: float, seconds: float) -> dict:
    targets = {"leaks_removed": {"value": 1.0, "bar": 0.9}, "refusal_edited": {"value": refusal, "bar": 0.9},
               "harmless_right": {"value": harmless_change, "bar": -0.05},
               "general_answered": {"value": None, "bar": 0.9}}
    for t in targets.values():
        t["met"] = None if t["value"] is None else t["value"] >= t["bar"]
    return {"targets": targets, "edit_seconds": seconds}


def test_shortfall_sums_the_distance_below_every_bar():
    assert shortfall(_summary(0.95, 0.0, 1)["targets"]) == 0
    assert shortfall(_summary(0.6, -0.15, 1)["targets"]) == 0.4


def test_choose_takes_the_setting_closest_to_every_target_within_the_time_limit():
    s = {"refuses_all_breaks_harmless": _summary(1.0, -0.5, 10), "balanced": _summary(0.8, -0.05, 50),
         "balanced_slow": _summary(0.8, -0.05, 90), "weak": _summary(0.3, 0.0, 5)}
    assert choose(s) == "balanced"  # 0.1 short of the bars, against 0.45 and 0.6
    assert choose(s, max_seconds=45) == "refuses_all_breaks_harmless"
    assert choose(s, max_seconds=5) == "weak"
    assert choose(s, max_seconds=1) is None


def test_grids_are_well_formed_and_files_are_checked(tmp_path):
    for name in GRIDS:
        cfg, cands = grid(name)
        assert cands and len({c.name for c in cands}) == len(cands)
        SearchConfig(**cfg)
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"config": {"categories": ["passport"]}, "candidates": [{"name": "x", "lr": 0.01}]}))
    cfg, cands = grid(str(f))
    assert cands == [Candidate("x", lr=0.01)] and cfg == {"categories": ["passport"]}
    f.write_text(json.dumps({"candidates": [{"name": "x", "learning_rate": 0.01}]}))
    with pytest.raises(PresetSearchError, match="only the keys"):
        grid(str(f))
    f.write_text("[1]")
    with pytest.raises(PresetSearchError, match="list 'candidates'"):
        grid(str(f))
    with pytest.raises(PresetSearchError, match="unknown grid"):
        grid("nope")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("psdata")
    generate_dataset(root / "d", seed=0, per_category=3, categories=["passport", "receipt"])
    return load_dataset(root / "d")


def test_mixed_records_alternate_train_and_heldout_template_paraphrases(small_data):
    plain = train_set(small_data, ["passport"], 1, mix=False)["passport"][0]
    mixed = train_set(small_data, ["passport"], 1, mix=True)["passport"][0]
    twin = [r for r in small_data.records("passport", "heldout_templates") if r.image == plain.image][0]
    assert mixed.paraphrases[0::2] == plain.paraphrases[: len(mixed.paraphrases[0::2])]
    assert mixed.paraphrases[1::2] == twin.paraphrases[: len(mixed.paraphrases[1::2])]
    assert mixed.image == plain.image and mixed.neighbours == plain.neighbours
    assert mixed_records([plain], {}) == [plain]
    both = train_set(small_data, ["passport"], 1, mix=True, mix_neighbours=True)["passport"][0]
    assert both.neighbours[0::2] == plain.neighbours[: len(both.neighbours[0::2])]
    assert both.neighbours[1::2] == twin.neighbours[: len(both.neighbours[1::2])]
    only_nb = train_set(small_data, ["passport"], 1, mix=False, mix_neighbours=True)["passport"][0]
    assert only_nb.paraphrases == plain.paraphrases and only_nb.neighbours == both.neighbours
    with pytest.raises(PresetSearchError, match="no train images"):
        train_set(small_data, ["credit_card"], 1, mix=False)


def test_search_end_to_end_caches_and_reports(tiny, small_data, tmp_path, monkeypatch):
    cfg = SearchConfig(categories=("passport",), world_categories=("passport", "receipt", "scene"), per_category=1,
                       n_privacy=1, max_new_tokens=4, controls=True)
    cands = [Candidate("a", lr=1e-3, steps=1, images=1, questions=1, mask_steps=1),
             Candidate("b", lr=1e-3, steps=1, images=1, questions=1, mask_steps=1, scope="weight_rows", topk=0.2,
                       mix_families=True)]
    logs: list[str] = []
    res = search(tiny, cfg, cands, small_data, tmp_path, log=logs.append)
    assert res["chosen"] in ("a", "b")
    assert set(res["summaries"]) == {"a", "b"} and set(res["controls"]) == {"a", "b"}
    for name in ("a", "b"):
        s = res["summaries"][name]
        assert set(s["targets"]) >= {"leaks_removed", "harmless_right", "general_answered"}
        assert s["edit_seconds"] >= 0
    saved = json.loads((tmp_path / "validation/search.json").read_text())
    assert saved["chosen"] == res["chosen"]
    md = (tmp_path / "validation/SEARCH.md").read_text()
    assert f"**{res['chosen']}** (chosen)" in md and "(random gate)" in md and "learned better" in md
    cell = json.loads((tmp_path / "validation/b-s0.json").read_text())
    assert cell["edit"]["gate_scope"] == "weight_rows" and cell["mask"]["topk"] == 0.2
    assert cell["rows"] and all("answer" in r for r in cell["rows"])
    from ng_core.method.bundle import Run

    run = Run.load(tmp_path / "runs" / "b-s0")  # every candidate's edit is a run bundle
    assert run.config["preset_search"]["candidate"]["name"] == "b" and run.deltas()
    assert (tmp_path / "runs" / "b-random_gate-s0" / "run.json").is_file()
    # a rerun reuses every cached edit and evaluation
    logs.clear()
    again = search(tiny, cfg, cands, small_data, tmp_path, log=logs.append)
    assert not any("editing" in m or "unedited:" in m for m in logs)
    assert again["summaries"]["a"]["edit_seconds"] == res["summaries"]["a"]["edit_seconds"]
    # so does the same folder named relatively (images are keyed relative to the search folder)
    logs.clear()
    monkeypatch.chdir(tmp_path.parent)
    search(tiny, cfg, cands, small_data, Path(tmp_path.name), log=logs.append)
    assert not any("editing" in m or "unedited:" in m for m in logs), logs
    test = search(tiny, cfg, cands[:1], small_data, tmp_path, part="test", log=logs.append)
    assert test["chosen"] is None  # the test part reports, it never chooses
    from ng_core.evaluation.preset_search import preset_from_search
    from ng_core.method.presets import available, load_preset

    base = available("demo")["tiny-random"]
    preset = preset_from_search(base, test, saved, "a", "docs/results/x", "ng preset-search ...")
    assert preset["match"] == base["match"] and preset["demo"] == base["demo"]
    assert preset["edit"]["lr"] == 1e-3 and preset["edit"]["steps"] == 1 and "seed" not in preset["edit"]
    assert preset["measured"]["part"] == "test" and preset["measured"]["control"]
    assert preset["measured"]["chosen_on_validation"]["chosen"] == res["chosen"]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(preset))
    loaded = load_preset("tiny-random", 4, override=str(f))
    assert loaded["measured"]["evidence"] == "docs/results/x" and loaded["edit"].questions_per_image == 1
    with pytest.raises(PresetSearchError, match="no candidate"):
        preset_from_search(base, test, saved, "b", "x", "y")
    # other decoding (or other cases) is never answered from the cache
    logs.clear()
    search(tiny, replace(cfg, max_new_tokens=5, controls=False), cands[:1], small_data, tmp_path, log=logs.append)
    assert any("unedited:" in m for m in logs) and any("editing" in m for m in logs)
    with pytest.raises(PresetSearchError, match="names must differ"):
        search(tiny, cfg, [cands[0], cands[0]], small_data, tmp_path)


def test_mix_wordings_in_the_edit_config_equals_mixing_the_records(small_data):
    from ng_core.method.edit import EditConfig, record_wordings

    plain = small_data.records("passport", "train")[0]
    assert set(plain.extra["other_wordings"]) == {"paraphrases", "neighbours"}  # the loader keeps the twin's
    mixed = train_set(small_data, ["passport"], 1, mix=True, mix_neighbours=True)["passport"][0]
    assert record_wordings(plain, True) == (mixed.paraphrases, mixed.neighbours)
    assert record_wordings(plain, False) == (plain.paraphrases, plain.neighbours)
    assert EditConfig().mix_wordings is False  # the authors' edit, unless a preset asks
    from dataclasses import replace as _replace

    bare = _replace(plain, extra={})  # a record without other wordings (paper files, uploads) is unchanged
    assert record_wordings(bare, True) == (plain.paraphrases, plain.neighbours)


def test_a_cached_candidate_from_before_a_new_lever_is_still_the_same_candidate():
    from dataclasses import asdict

    from ng_core.evaluation.preset_search import _same

    c = Candidate("x", lr=3e-3, questions=2)
    old = {k: v for k, v in asdict(c).items() if k not in ("kl_factor", "mix_neighbours")}
    assert _same(old, c) and _same(asdict(c), c)
    assert not _same(old, Candidate("x", lr=3e-3, questions=2, kl_factor=2.5))
    assert not _same(None, c)


def test_the_learned_vs_random_table_states_its_verdict():
    from ng_core.evaluation.preset_search_render import verdict

    same = {"values": [0.5, 0.5]}
    assert "not what makes the edit work" in verdict({"refusal_edited": same, "harmless_right": same},
                                                    {"refusal_edited": same, "harmless_right": same})
    text = verdict({"refusal_edited": {"values": [0.9, 0.8]}, "harmless_right": {"values": [0.2, 0.3]}},
                   {"refusal_edited": {"values": [0.5, 0.4]}, "harmless_right": {"values": [0.6, 0.7]}})
    assert "refuses more in 2 of 2 seeds" in text and "keeps fewer harmless answers right in 2 of 2" in text


def test_cli_max_seconds_is_checked_before_any_work(tmp_path, capsys):
    from ng_core.cli.main import main

    rc = main(["preset-search", "--model", "tiny-random", "--grid", "demo", "--max-seconds", "-5",
               "--out", str(tmp_path / "o")])
    assert rc == 1 and "--max-seconds" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before the output folder is made
