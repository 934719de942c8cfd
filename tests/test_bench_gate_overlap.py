"""bench/gate_overlap.py: rows shared by learned gates within and across categories, from sweep cells' bundles."""
import json
from pathlib import Path

import numpy as np
import pytest
from bench_scripts import load_bench
from safetensors.numpy import save_file


@pytest.fixture(scope="module")
def bench():
    return load_bench("gate_overlap")


def make_cell(root: Path, cat: str, gates: dict, images: dict) -> Path:
    """A sweep cell with seeds 0, 1, 2: ``gates[(kind, seed)]`` = gated rows of 10; ``images[seed]`` its image."""
    cell = root / cat
    for (kind, sd), rows in gates.items():
        run = cell / "runs" / (kind if sd == 0 else f"{kind}__seed-{sd}")
        run.mkdir(parents=True)
        v = np.zeros(10, dtype=np.float32)
        v[list(rows)] = 1
        save_file({f"{cat}/L3/gate": v, "L3": np.zeros((10, 4), dtype=np.float32)}, str(run / "deltas.safetensors"))
    meta = {"seed_records": {str(sd): {cat: [im]} for sd, im in images.items()}}
    (cell / "cell.json").write_text(json.dumps({"meta": meta}))
    return cell


def test_within_and_across_categories(tmp_path, bench, capsys):
    rnd = {("random_gate", 0): {7, 8}, ("random_gate", 1): {8, 9}, ("random_gate", 2): {7, 9}}
    a = make_cell(tmp_path, "passport", {("neural_gate", 0): {0, 1}, ("neural_gate", 1): {0, 1},
                                         ("neural_gate", 2): {0, 2}, **rnd}, {0: "p0", 1: "p0", 2: "p2"})
    b = make_cell(tmp_path, "receipt", {("neural_gate", 0): {0, 5}, ("neural_gate", 1): {5, 6},
                                        ("neural_gate", 2): {5, 6}, **rnd}, {0: "r0", 1: "r1", 2: "r2"})
    out = tmp_path / "o.json"
    assert bench.main([str(a), str(b), "--json", str(out)]) == 0
    rows = {(r["gate"], r["a"], r["b"]): r for r in json.loads(out.read_text())["rows"]}
    # passport: seeds 0 and 1 edited the same image (left out); (0,2) and (1,2) share 1 of 2 rows
    p = rows[("neural_gate", "passport/L3", "passport/L3")]
    assert (p["pairs"], p["same_image_pairs"], p["overlap"], p["chance"]) == (2, 1, 0.5, pytest.approx(0.2))
    r = rows[("neural_gate", "receipt/L3", "receipt/L3")]  # (0,1) 1/2, (0,2) 1/2, (1,2) 2/2
    assert r["pairs"] == 3 and r["overlap"] == pytest.approx(2 / 3)
    # across: pairs of different seeds only; passport {0,1},{0,1},{0,2} vs receipt {0,5},{5,6},{5,6}
    x = rows[("neural_gate", "passport/L3", "receipt/L3")]
    assert x["pairs"] == 6 and x["overlap"] == pytest.approx((0 + 0 + 0.5 + 0 + 0.5 + 0) / 6)
    # random gates are a function of the seed: across categories their same-seed pairs would agree by construction
    assert rows[("random_gate", "passport/L3", "receipt/L3")]["overlap"] == pytest.approx(0.5)
    assert "| learned | two `passport/L3` gates (different images) | 2 | 50.0% | 20.0% | 2.50x |" in capsys.readouterr().out


def test_not_a_cell_is_a_clear_error(tmp_path, bench, capsys):
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path)])
    assert "not a finished sweep cell" in capsys.readouterr().err
