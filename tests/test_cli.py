"""`ng` end to end on tiny-random and a small generated dataset, including its error paths."""
import json

import pytest

from ng_core.cli.main import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ng_core.data import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("d") / "data", seed=0, per_category=4,
                            categories=["passport", "receipt"])


def test_help_is_complete(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("ask", "localize", "edit", "scores", "runs", "model", "data"):
        assert cmd in out
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    out = capsys.readouterr().out
    for opt in ("--gate-scope", "--method", "--layer", "--data", "--category", "--out", "--schedule"):
        assert opt in out


def test_localize_edit_ask_scores(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["localize", "--model", "tiny-random", "--data", str(data), "--category", "passport,receipt",
                 "--layer", "2", "--mask-steps", "2", "--max-images", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "passport L2:" in out and "receipt L2:" in out
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "localize" and meta["config"]["mask"]["steps"] == 2
    assert meta["config"]["preset"]["name"] == "tiny-random"

    # edit reuses the masks already in the run folder
    assert main(["edit", "--model", "tiny-random", "--data", str(data), "--category", "passport",
                 "--layer", "2", "--gate-scope", "weight_rows", "--lr", "0.01", "--edit-steps", "2",
                 "--questions", "1", "--max-images", "2", "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert "reusing the masks" in captured.err
    assert "gate leak 0.000" in captured.out
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "edit" and meta["config"]["edit"]["gate_scope"] == "weight_rows"

    img = next((data / "images" / "passport").glob("*.png"))
    assert main(["ask", "--model", "tiny-random", "--image", str(img), "--prompt", "What is the passport number?",
                 "--json", "--max-new-tokens", "4"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["ask", "--model", "tiny-random", "--image", str(img), "--prompt", "What is the passport number?",
                 "--json", "--max-new-tokens", "4", "--run", str(run)]) == 0
    edited = json.loads(capsys.readouterr().out)
    assert plain["answer"] and edited["run"] == str(run)

    sc = tmp_path / "scores"
    assert main(["scores", "--model", "tiny-random", "--data", str(data), "--category", "passport",
                 "--method", "contrast", "--max-images", "2", "--out", str(sc)]) == 0
    assert "contrast/residual (4, 64)" in capsys.readouterr().out

    assert main(["runs", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "run " in listing and "scores" in listing


def test_errors_are_one_clear_line(data, tmp_path, capsys):
    assert main(["ask", "--model", str(tmp_path / "nope"), "--prompt", "hi"]) == 1
    assert "unknown model" in capsys.readouterr().err
    assert main(["localize", "--model", "tiny-random", "--data", str(data), "--category", "dragons",
                 "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "unknown category dragons" in err and "passport" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{")
    img = next((data / "images" / "passport").glob("*.png"))
    assert main(["ask", "--model", "tiny-random", "--image", str(img), "--prompt", "hi", "--run", str(bad)]) == 1
    assert "corrupt" in capsys.readouterr().err
    notimg = tmp_path / "x.png"
    notimg.write_text("not an image")
    assert main(["ask", "--model", "tiny-random", "--image", str(notimg), "--prompt", "hi"]) == 1
    assert "not a readable image" in capsys.readouterr().err


def test_inputs_are_checked_before_the_model_loads(data, tmp_path, capsys, monkeypatch):
    """A wrong path, prompt or category fails at once: a local 7B checkpoint would take minutes to load first."""
    from ng_core.cli import inputs

    def no_model(args):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(inputs, "load_model", no_model)
    cases = [
        (["ask", "--image", str(tmp_path / "nope.png"), "--prompt", "hi"], "image not found"),
        (["ask", "--prompt", "   "], "the prompt is empty"),
        (["ask", "--prompt", "hi", "--run", str(tmp_path)], "run.json is missing"),
        (["ask", "--prompt", "hi", "--run", str(tmp_path / "nope")], "run folder not found"),
    ]
    for cmd in ("localize", "edit", "scores", "tradeoff"):
        cases += [([cmd, "--data", str(tmp_path), "--category", "passport", "--out", str(tmp_path / cmd)],
                   "not a dataset folder"),
                  ([cmd, "--data", str(data), "--category", "dragons", "--out", str(tmp_path / cmd)],
                   "unknown category dragons")]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "model was loaded" not in err, (argv, err)
        assert not (tmp_path / argv[0]).exists()


def test_help_and_argument_checks_do_not_import_torch():
    """``ng --help`` answers at once: the CLI and the model registry load torch only when a command needs it."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\nfrom ng_core.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "import ng_core.models\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
