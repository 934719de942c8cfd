"""The method registry: each method is one record, and everything that lists, titles or runs methods reads it.

A toy method registered inside a test (``toy_method``, conftest) shows up in ``ng edit --method``, edits through
its own gate, and appears in the report's methods and titles; the Edit page's list is in test_app_edit.py.
"""
from __future__ import annotations

import json

import pytest
import torch

from ng_core.method import registry as R

pytestmark = pytest.mark.usefixtures("one_thread")


def _choices(parser, command: str, dest: str) -> list:
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return list(next(a for a in sub._actions if a.dest == dest).choices)


def test_the_shipped_methods_are_one_record_each():
    assert R.names(R.EDIT) == ("neural_gate", "ft", "random_gate", "complement_gate")
    assert R.names(R.EVALUATION) == ("unedited", "system_prompt", "inference_gate", "edited")
    assert R.names(R.SCORE) == ("mask", "gradxact", "contrast")
    assert R.report_methods() == ("unedited", "system_prompt", "neural_gate", "inference_gate", "ft",
                                  "random_gate", "complement_gate")
    assert [m.name for m in R.sweep_gates()] == [R.LEARNED, R.RANDOM_CONTROL, "complement_gate"]
    assert [m.name for m in R.methods(R.EDIT) if m.takes_control] == [R.LEARNED]
    ft = R.get_method("ft")
    assert not ft.gated and not ft.needs_masks and ft.title == "Fine-tuning, no gate"
    assert R.with_control("neural_gate") == ("neural_gate", "random_gate")
    assert R.with_control("complement_gate") == ("complement_gate", "random_gate")
    assert R.with_control("ft") == ("ft",) and R.with_control("random_gate") == ("random_gate",)
    assert R.title("neural_gate@seed=1") == "neural_gate@seed=1"  # a report variant keeps its name
    with pytest.raises(ValueError, match="unknown edit method 'unedited'"):
        R.get_method("unedited", R.EDIT)


def test_evaluation_and_score_records_carry_their_behaviour():
    """What the evaluation, the CLI, the report and the Localize page read instead of the method's name."""
    base = R.get_method(R.BASELINE, R.EVALUATION)
    assert base.baseline and not base.takes_run and [m.name for m in R.methods() if m.baseline] == [R.BASELINE]
    sp, gate, edited = (R.get_method(n, R.EVALUATION) for n in ("system_prompt", "inference_gate", "edited"))
    assert sp.system_prompt and (sp.takes_deltas, sp.takes_gates) == (R.MAY, R.MAY)
    assert gate.takes_gates == R.NEEDS and gate.needs_masks and not gate.system_prompt
    assert edited.takes_deltas == R.NEEDS
    assert all(m.takes_deltas == R.NEEDS for m in R.methods(R.EDIT))
    mask, gradxact, contrast = (R.get_method(n, R.SCORE) for n in ("mask", "gradxact", "contrast"))
    assert mask.learned and mask.min_pairs == 0 and not gradxact.learned and not contrast.learned
    assert (gradxact.min_pairs, contrast.min_pairs) == (1, 2)
    assert (mask.long_after_layers, gradxact.long_after_layers, contrast.long_after_layers) == (2, 4, 0)
    assert [m.score for m in R.methods(R.SCORE)] == [R.mask_score, R.gradxact_score, R.contrast_score]
    assert all(m.score is None for m in R.methods() if m.kind != R.SCORE)
    with pytest.raises(ValueError, match="only a neuron score"):
        R.Method("noscore", R.SCORE, "No scorer", "a neuron score without a scorer")
    with pytest.raises(ValueError, match="its own deltas"):
        R.Method("nodelta", R.EDIT, "No deltas", "a weight edit", R.learned_gate, takes_deltas=R.MAY)
    with pytest.raises(ValueError, match="one of"):
        R.Method("odd", R.EVALUATION, "Odd", "an unknown use of gates", takes_gates="sometimes")


def test_a_record_is_checked_and_a_name_is_registered_once(toy_method):
    with pytest.raises(ValueError, match="already registered"):
        R.register(toy_method)
    with pytest.raises(ValueError, match="only a weight edit"):
        R.Method("nogate", R.EDIT, "No gate", "a weight edit without a gate")
    with pytest.raises(ValueError, match="letters, digits"):
        R.Method("a@b", R.EVALUATION, "Bad", "a name a report variant could not hold")


def test_a_toy_method_is_removed_after_its_block_even_on_an_error():
    toy = R.Method("toy_once", R.EVALUATION, "Toy", "registered for one block")
    with pytest.raises(RuntimeError):
        with R.registered(toy):
            assert "toy_once" in R.names()
            raise RuntimeError("the block fails")
    assert R.find_method("toy_once") is None


def test_toy_method_gates_and_cli_choices(toy_method):
    from ng_core.cli.evaluate import method_choices
    from ng_core.cli.main import build_parser
    from ng_core.method.edit import EditConfig, gate_for_method

    sel = torch.zeros(10, dtype=torch.bool)
    sel[[2, 5, 7]] = True
    assert gate_for_method(sel, "first_rows").tolist() == [True] * 3 + [False] * 7
    assert EditConfig(method="first_rows").method == "first_rows"
    ap = build_parser()
    assert "first_rows" in _choices(ap, "edit", "edit_method")
    assert "first_rows" in _choices(ap, "tradeoff", "edit_method")
    assert "first_rows" in _choices(ap, "evaluate", "method") and "first_rows" in method_choices()
    argv = ["edit", "--method", "first_rows", "--data", "d", "--category", "passport", "--out", "x"]
    assert ap.parse_args(argv).edit_method == "first_rows"


def test_without_the_toy_method_it_is_no_choice(capsys):
    from ng_core.cli.main import build_parser

    assert "first_rows" not in R.names()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["edit", "--method", "first_rows", "--data", "d", "--category", "passport",
                                   "--out", "x"])
    assert "invalid choice: 'first_rows'" in capsys.readouterr().err


def test_toy_method_in_the_report_methods_and_titles(toy_method):
    from ng_core.evaluation.report_config import ReportConfig, needs_base_masks, stage_order
    from ng_core.evaluation.report_render import leak_table

    assert R.report_methods()[-1] == "first_rows" and "first_rows" in ReportConfig().methods
    assert needs_base_masks("first_rows")  # it gates the report's learned masks
    assert "first_rows" in stage_order(R.report_methods(), [], 0, [], 1e-3)
    cell = {"n_secret": 2, "leak_rate": 0.5}
    lines = leak_table({"first_rows": {"splits": {"heldout_images": cell}, **cell}}, ["first_rows"])
    assert any(line.startswith("| First rows (toy) |") for line in lines)


def test_toy_method_edits_through_ng_edit(toy_method, tmp_path, capsys):
    """``ng edit --method first_rows`` on tiny-random: the run records the method, and the weight-row scope leaves
    every row outside the toy's gate (the first rows) exactly unchanged."""
    from ng_core.cli.main import main
    from ng_core.data import generate_dataset
    from ng_core.method.bundle import Run

    data = generate_dataset(tmp_path / "data", seed=0, per_category=2, categories=["passport"])
    run = tmp_path / "run"
    common = ["--model", "tiny-random", "--data", str(data), "--category", "passport", "--layer", "2",
              "--max-images", "1", "--out", str(run)]
    # masks that select a quarter of the rows (the edit reuses them), so the toy gate is not empty
    assert main(["localize", *common, "--mask-steps", "1", "--topk", "0.25", "--threshold", "0"]) == 0
    assert main(["edit", *common, "--method", "first_rows", "--gate-scope", "weight_rows", "--lr", "0.01",
                 "--edit-steps", "1", "--questions", "1"]) == 0
    assert "reusing the masks" in capsys.readouterr().err
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["edit"]["method"] == "first_rows"
    r = Run.load(run)
    gate = r.tensors["deltas"]["passport/L2/gate"].bool()
    k = int(r.tensors["masks"]["passport/L2/selected"].sum())
    assert gate.tolist() == [True] * k + [False] * (gate.numel() - k)
    dw = r.tensors["deltas"]["L2"]
    assert 0 < k < gate.numel()
    assert float(dw[~gate].abs().max()) == 0.0 and float(dw[gate].abs().max()) > 0


def test_no_method_name_is_compared_outside_the_registry():
    """Behaviour is read from the records: no ``== "ft"``, ``!= "unedited"``, ``== "mask"`` or
    ``in ("ft", ...)`` against a method's name, of any kind (weight edit, evaluation, neuron score), anywhere in
    the library or the dashboard but the registry itself (code that needs the unedited reference names it
    ``BASELINE``)."""
    import ast
    from pathlib import Path

    from ng_core.method.registry import KINDS, names

    root = Path(__file__).resolve().parents[1]
    method_names = {n for kind in KINDS for n in names(kind)}
    assert {"ft", "unedited", "inference_gate", "mask", "contrast"} <= method_names
    bad = []
    for folder in ("ng_core", "app"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.name == "registry.py" and path.parent.name == "method":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Compare):
                    continue
                sides = [node.left, *node.comparators]
                consts = [c for s in sides for c in ([s] if isinstance(s, ast.Constant) else
                                                     getattr(s, "elts", []) if isinstance(s, (ast.Tuple, ast.List,
                                                                                              ast.Set)) else [])]
                if any(isinstance(c, ast.Constant) and c.value in method_names for c in consts):
                    bad.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not bad, "method names compared outside the registry: " + ", ".join(bad)
