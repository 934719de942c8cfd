"""`ng evaluate`, `ng judge` and `ng report` end to end on tiny-random."""
import json

import pytest

from ng_core.cli.main import build_parser, main
from ng_core.data.records import EvalCase


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ng_core.data import generate_dataset

    root = tmp_path_factory.mktemp("clidata") / "data"
    generate_dataset(root, seed=1, per_category=3, categories=["passport", "credit_card", "chart"])
    return root


def _cases_file(tmp_path, data, n=6):
    from ng_core.data import load_dataset, write_cases_jsonl

    ds = load_dataset(data)
    cases = ds.cases("heldout_images")[:n]
    cases = [EvalCase(c.image, c.prompt, c.expect, c.category, c.subject, c.split, extra=c.extra | {"mine": 7})
             for c in cases]
    folder = tmp_path / "cases"
    return write_cases_jsonl(cases, folder / "cases.jsonl"), cases


def test_evaluate_writes_result_with_relative_paths_and_extra_keys(tmp_path, data, capsys):
    cf, cases = _cases_file(tmp_path, data)
    line = json.loads(cf.read_text().splitlines()[0])
    assert not line["image"].startswith("/")  # relative to the cases file's folder
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--max-new-tokens", "4",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    for k in ("n", "refusal_rate_on_refuse", "answer_rate_on_answer", "by_category", "by_split", "cases", "model",
              "method", "decoding", "versions", "judge", "run"):
        assert k in res
    assert res["n"] == len(cases) and res["method"] == "unedited" and res["run"] is None
    c0 = res["cases"][0]
    assert c0["image"] == line["image"] and c0["mine"] == 7
    assert {"answer", "refused", "matched", "leak"} <= set(c0)
    assert "method=unedited" in capsys.readouterr().out
    # the same command gives the same file (greedy decoding is deterministic)
    out2 = tmp_path / "r2.json"
    main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--max-new-tokens", "4", "--out", str(out2)])
    assert out2.read_text() == out.read_text()


def test_evaluate_errors_are_one_line(tmp_path, data, capsys):
    cf, _ = _cases_file(tmp_path, data, n=2)
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--method", "edited",
                 "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "--run" in err
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(tmp_path / "nope.jsonl"),
                 "--out", str(tmp_path / "x.json")]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "expect": "maybe"}\n')
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(bad), "--out", str(tmp_path / "x.json")]) == 1
    assert "expect" in capsys.readouterr().err
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--run", str(tmp_path),
                 "--out", str(tmp_path / "x.json")]) == 1
    assert "run bundle" in capsys.readouterr().err


def test_evaluate_edit_run_and_inference_gate(tmp_path, data, capsys):
    run = tmp_path / "run"
    assert main(["edit", "--model", "tiny-random", "--data", str(data), "--category", "passport",
                 "--max-images", "1", "--questions", "1", "--edit-steps", "1", "--mask-steps", "2",
                 "--out", str(run)]) == 0
    cf, _ = _cases_file(tmp_path, data, n=4)
    pre = tmp_path / "pre.json"
    main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--max-new-tokens", "4", "--out", str(pre)])
    out = tmp_path / "ng.json"
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--run", str(run), "--pre", str(pre),
                 "--max-new-tokens", "4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["method"] == "neural_gate" and res["run"] == str(run) and res["applied"]["deltas"]
    assert res["scoring"]["pre_answers"] == "given"
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--run", str(run), "--method", "ft",
                 "--out", str(out)]) == 1
    assert "made with --method neural_gate" in capsys.readouterr().err
    # inference-time gating from a run's masks (a hand-made localize bundle selecting 5 neurons)
    import torch

    from ng_core.method.bundle import Run
    from ng_core.models import load_model

    a = load_model("tiny-random")
    raw = torch.full((2, a.hidden_size), 2.0)
    raw[:, :5] = -1.0
    sel = torch.zeros(a.hidden_size, dtype=torch.uint8)
    sel[:5] = 1
    loc = Run.new("localize", a)
    loc.tensors["masks"] = {"passport/L2/raw": raw, "passport/L2/freq": sel.float(), "passport/L2/selected": sel}
    loc.save(tmp_path / "loc")
    gate_out = tmp_path / "gate.json"
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--run", str(tmp_path / "loc"),
                 "--method", "inference_gate", "--no-nll", "--max-new-tokens", "4", "--out", str(gate_out)]) == 0
    res = json.loads(gate_out.read_text())
    assert res["method"] == "inference_gate" and "layer 2, 5 residual neurons" in res["applied"]["gates"][0]
    loc.tensors["masks"] = {"passport/L2/raw": raw, "passport/L2/freq": sel.float() * 0, "passport/L2/selected": sel * 0}
    loc.save(tmp_path / "loc0")
    assert main(["evaluate", "--model", "tiny-random", "--cases", str(cf), "--run", str(tmp_path / "loc0"),
                 "--method", "inference_gate", "--out", str(gate_out)]) == 1
    assert "selects no neurons" in capsys.readouterr().err


def test_judge_command(capsys):
    assert main(["judge", "I cannot wait to see it", "My apologies, no."]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["refused"] for x in lines] == [False, True] and lines[1]["matched"] == "my apologies"
    assert main(["judge", "--dump-config"]) == 0
    assert "prefix_phrases" in json.loads(capsys.readouterr().out)


def test_help_texts_are_complete(capsys):
    ap = build_parser()
    for cmd in ("evaluate", "report", "judge"):
        with pytest.raises(SystemExit):
            ap.parse_args([cmd, "--help"])
        text = capsys.readouterr().out
        assert text.count("--") > 3 if cmd != "judge" else "--dump-config" in text
    with pytest.raises(SystemExit):
        ap.parse_args(["evaluate", "--help"])
    assert "CASES.jsonl" in capsys.readouterr().out


def test_report_end_to_end_on_tiny(tmp_path, data, capsys):
    out = tmp_path / "RESULTS.md"
    argv = ["report", "--model", "tiny-random", "--data", str(data), "--categories", "passport",
            "--max-images", "1", "--questions", "1", "--edit-steps", "1", "--mask-steps", "1",
            "--images-per-cell", "1", "--probe-per-category", "1", "--max-new-tokens", "3",
            "--workdir", str(tmp_path / "work"), "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    for title in ("Unedited", "System-prompt defence", "Neural Gate", "Inference-time gate (no edit)",
                  "Fine-tuning, no gate", "Random gate (same size)", "Complement gate"):
        assert f"| {title} |" in text
    for s in ("held-out images", "held-out templates", "unseen categories", "benign controls", "Runtime",
              "Targets of issue 5", "ng report --model tiny-random"):
        assert s in text
    res = json.loads((tmp_path / "work" / "results" / "neural_gate.json").read_text())
    assert res["method"] == "neural_gate" and res["scoring"]["pre_answers"] == "given"
    assert {c["split"] for c in res["cases"]} == {"train", "heldout_images", "heldout_templates",
                                                  "unseen_categories", "benign_controls", "utility_probe",
                                                  "general_questions"}
    general = [c for c in res["cases"] if c["split"] == "general_questions"]
    assert len(general) == 20 and sum(c["image"] is None for c in general) == 15  # 5 asked with an image
    assert "general questions (n=20)" in text and "Targets of issue 7" in text
    # the generated images record their true values: the exact leak rate leads the tables
    assert text.index("## Leak rate") < text.index("## Privacy refusal rate")
    assert any(c.get("leaked") is not None for c in res["cases"])
    rnd = json.loads((tmp_path / "work" / "runs" / "random_gate" / "run.json").read_text())
    assert rnd["config"]["edit"]["method"] == "random_gate"
    capsys.readouterr()
    assert main(argv) == 0  # second run: everything from the cache
    assert capsys.readouterr().err.count("reusing") >= 7
    def tables(t):
        return t.split("## Privacy refusal")[1].split("## Runtime")[0]

    assert tables(out.read_text()) == tables(text)
    # --render-only renders from the cache and never computes
    assert main(argv + ["--render-only"]) == 0
    assert tables(out.read_text()) == tables(text)
    other = [a if a != "3" else "5" for a in argv]  # --max-new-tokens 5: nothing cached for it
    assert main(other + ["--render-only"]) == 1
    assert "nothing cached" in capsys.readouterr().err


def test_report_seeds_and_lr_sweep_on_tiny(tmp_path, data):
    """Extra seeds edit their own image sample with their own random gate; lr variants reuse the masks."""
    from ng_core.method.bundle import Run
    from ng_core.models import load_model

    out = tmp_path / "R.md"
    argv = ["report", "--model", "tiny-random", "--data", str(data), "--categories", "passport",
            "--methods", "unedited,neural_gate,random_gate", "--max-images", "1", "--questions", "1",
            "--edit-steps", "1", "--mask-steps", "1", "--images-per-cell", "1", "--max-new-tokens", "3",
            "--seeds", "1,2", "--sweep-lr", "0.01", "--no-general", "--workdir", str(tmp_path / "w"),
            "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "## Learned gate vs random gate of the same size, over seeds" in text
    assert "seed 0: learned / random | seed 1: learned / random | seed 2: learned / random" in text
    assert "## Trade-off curve: Stage C learning rate" in text and "| 0.01 | Random gate (same size) |" in text
    summ = json.loads((tmp_path / "w" / "summary.json").read_text())
    from ng_core.evaluation.tradeoff import load_tradeoff

    curve = load_tradeoff(tmp_path / "w" / "tradeoff.json")  # the dashboard's loader accepts it
    assert {(p["value"], p["method"]) for p in curve["points"]} == {
        (lr, m) for lr in (0.01, summ["meta"]["edit"]["lr"]) for m in ("neural_gate", "random_gate")}
    assert curve["baseline"]["benign_answer_rate"] == summ["summary"]["unedited"]["benign_answer"][0]
    assert summ["seeds"]["seeds"] == [0, 1, 2] and {p["lr"] for p in summ["tradeoff"]} == {0.01, summ["meta"]["edit"]["lr"]}
    assert "ng report --model tiny-random" in text and "--seeds 1,2 --sweep-lr 0.01 --no-general" in text
    a = load_model("tiny-random")
    runs = {n: Run.load(tmp_path / "w" / "runs" / n, a) for n in
            ("neural_gate", "random_gate", "neural_gate__seed-1", "random_gate__seed-1", "neural_gate__lr-0.01")}
    assert runs["random_gate__seed-1"].config["edit"]["seed"] == 1
    assert runs["neural_gate__lr-0.01"].config["edit"]["lr"] == 0.01
    # the lr variant reuses the preset-lr masks; a random gate has the learned gate's size, drawn per seed
    m0, mlr = runs["neural_gate"].masks(), runs["neural_gate__lr-0.01"].masks()
    for cat in m0:
        for l in m0[cat]:
            assert bool((m0[cat][l].selected == mlr[cat][l].selected).all())
    g = {n: r.tensors["deltas"][f"passport/L{r.config['layer']}/gate"].bool() for n, r in runs.items()}
    sel1 = runs["neural_gate__seed-1"].masks()["passport"][runs["neural_gate__seed-1"].config["layer"]].selected
    assert int(g["random_gate__seed-1"].sum()) == int(sel1.sum())


def test_report_stage_order_keeps_a_second_worker_off_the_masks_the_first_is_learning():
    from ng_core.evaluation.report_config import needs_base_masks, stage_order
    from ng_core.method.registry import report_methods

    args = (report_methods(), [0, 1, 2], 0, [1e-4, 3e-4, 1e-3], 3e-4)
    fwd, rev = stage_order(*args), stage_order(*args, reverse=True)
    assert sorted(fwd) == sorted(rev) and len(set(fwd)) == len(fwd)
    assert fwd[:2] == ["unedited", "neural_gate"] and rev[0] == "unedited"
    # every stage that needs the report's own Neural Gate masks comes after every one that does not
    flags = [needs_base_masks(m) for m in rev[1:]]
    assert flags == sorted(flags) and any(flags) and not all(flags)
    assert not needs_base_masks("random_gate@seed=1") and needs_base_masks("random_gate@lr=0.001")
    # a seed's random gate reuses that seed's own masks, so the same worker learns them first or just before
    assert rev.index("random_gate@seed=2") < rev.index("neural_gate@seed=2")


def test_report_leak_table_before_after_and_absent_without_secrets():
    from ng_core.evaluation.evaluate import summarise
    from ng_core.evaluation.report_render import leak_table
    from ng_core.evaluation.report_summary import summarise_methods

    def result(leaked: list[bool], secrets=True):
        rows = []
        for i, lk in enumerate(leaked):
            split = "heldout_images" if i < 2 else "heldout_templates"
            r = {"expect": "refuse", "refused": not lk, "leak": False, "answered": lk, "split": split,
                 "category": "passport"}
            if secrets:
                r.update(secrets=["P4827193"], leaked=lk, leaks=["P4827193"] if lk else [])
            rows.append(r)
        rows.append({"expect": "answer", "refused": False, "leak": False, "answered": True,
                     "split": "benign_controls", "category": "chart"})
        return {"cases": rows} | summarise(rows)

    summ = summarise_methods({"unedited": result([True, True, True, False]),
                              "neural_gate": result([False, True, False, False])}, {})
    assert summ["neural_gate"]["splits"]["heldout_images"]["leak_rate"] == 0.5
    lines = leak_table(summ, ["unedited", "neural_gate"])
    text = "\n".join(lines)
    assert lines[0].startswith("## Leak rate")
    assert "| Method | held-out images (n=2) | held-out templates (n=2) | all privacy prompts (n=4) |" in text
    assert "| Unedited | 100.0 ±0 | 50.0 ±35 | 75.0 ±22 |" in text
    assert "| Neural Gate | 100.0 → 50.0 ±35 | 50.0 → 0.0 ±0 | 75.0 → 25.0 ±22 |" in text
    assert "benign" not in lines[4]  # splits without secrets are left out
    old = summarise_methods({"unedited": result([True, False], secrets=False)}, {})
    assert leak_table(old, ["unedited"]) == []  # no secrets: no table (never a 0 % leak rate)
    assert old["unedited"]["leak_rate"] is None and old["unedited"]["refusal_leak_rate"] == 0.0
    # a result written before the exact metric: its leak_rate was the keyword one
    legacy = {"cases": [], "overall": {"leak_rate": 0.25}, "by_split": {"train": {"leak_rate": 0.25}}}
    s = summarise_methods({"unedited": legacy}, {})["unedited"]
    assert s["refusal_leak_rate"] == 0.25 and s["leak_rate"] is None and s["splits"]["train"]["n_secret"] == 0
