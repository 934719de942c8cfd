"""Run bundles round-trip, refuse other models' runs and corrupt folders, and never unpickle."""
import json

import pytest
import torch

from ng_core.method.bundle import Run, list_runs
from ng_core.errors import BundleError
from ng_core.models import load_model


def _run(adapter):
    r = Run.new("edit", adapter, {"layer": 2, "edit": {"lr": 1e-3}}, {"seed": 7})
    r.tensors["masks"]["passport/L2/raw"] = torch.randn(3, adapter.hidden_size)
    r.tensors["masks"]["passport/L2/freq"] = torch.rand(adapter.hidden_size)
    r.tensors["masks"]["passport/L2/selected"] = (torch.rand(adapter.hidden_size) > 0.5).to(torch.uint8)
    r.tensors["deltas"]["L2"] = torch.randn(adapter.hidden_size, adapter.ffn_size)
    r.metrics["note"] = {"ok": True}
    return r


def test_round_trip(tiny, tmp_path):
    r = _run(tiny)
    r.save(tmp_path / "run")
    back = Run.load(tmp_path / "run", tiny)
    assert back.kind == "edit" and back.seeds == {"seed": 7} and back.config["layer"] == 2
    for f in ("masks", "deltas"):
        for k, v in r.tensors[f].items():
            assert torch.equal(back.tensors[f][k], v)
    assert back.metrics == {"note": {"ok": True}}
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["model"]["fingerprint"] == tiny.fingerprint()
    assert "torch" in meta["versions"] and "transformers" in meta["versions"]
    (d,) = back.deltas()
    assert d.layer == 2 and torch.equal(d.delta, r.tensors["deltas"]["L2"])
    cm = back.masks()["passport"][2]
    assert cm.selected.dtype == torch.bool and cm.raw.shape == (3, tiny.hidden_size)
    # no pickle anywhere in the folder
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "deltas.safetensors", "masks.safetensors", "metrics.json", "run.json"]


def test_run_for_another_model_is_refused(tiny, tmp_path):
    _run(tiny).save(tmp_path / "run")
    other = load_model("tiny-random", seed=1)
    with pytest.raises(BundleError, match=r"made for model 'tiny-random'.*fingerprint.*loaded model is 'tiny-random'"):
        Run.load(tmp_path / "run", other)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    meta["model"]["id"] = "llava-1.5-7b-hf"
    (tmp_path / "run" / "run.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="llava-1.5-7b-hf.*tiny-random"):
        Run.load(tmp_path / "run", tiny)


@pytest.mark.parametrize("damage,message", [
    ("no_json", "run.json is missing"),
    ("bad_json", "corrupt"),
    ("wrong_format", "not an ng-run"),
    ("missing_tensor", "deltas.safetensors is missing"),
    ("garbage_tensor", "corrupt"),
    ("path_escape", "unexpected file"),
])
def test_corrupt_run_folders_give_clear_errors(tiny, tmp_path, damage, message):
    p = _run(tiny).save(tmp_path / "run")
    meta_p = p / "run.json"
    meta = json.loads(meta_p.read_text())
    if damage == "no_json":
        meta_p.unlink()
    elif damage == "bad_json":
        meta_p.write_text("{not json")
    elif damage == "wrong_format":
        meta["format"] = "pickle"
        meta_p.write_text(json.dumps(meta))
    elif damage == "missing_tensor":
        (p / "deltas.safetensors").unlink()
    elif damage == "garbage_tensor":
        (p / "deltas.safetensors").write_bytes(b"\x80\x04\x95 this is not safetensors")
    elif damage == "path_escape":
        meta["files"]["masks"] = "../../etc/passwd"
        meta_p.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=message):
        Run.load(p, tiny)


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        Run.load(tmp_path / "nope")


def test_save_never_overwrites_a_users_folder(tiny, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(BundleError, match="not a run bundle"):
        _run(tiny).save(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_overwrite_replaces_a_run_atomically(tiny, tmp_path):
    r = _run(tiny)
    r.save(tmp_path / "run")
    r.metrics["note"] = "second"
    r.kind, r.tensors["deltas"] = "localize", {}  # an edit run without deltas is refused (test_edit_runs)
    r.save(tmp_path / "run")
    back = Run.load(tmp_path / "run", tiny)
    assert back.metrics["note"] == "second" and not back.tensors["deltas"]
    assert not (tmp_path / "run" / "deltas.safetensors").exists()
    assert [x["name"] for x in list_runs(tmp_path)] == ["run"]
