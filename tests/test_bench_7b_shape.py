"""bench/bench_7b_shape.py: the 7B config has LLaVA-1.5-7B's shape; the tiny scale runs end to end."""
import json

import pytest
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("bench_7b_shape")


def test_7b_config_has_llava15_7b_shape(bench):
    tok = bench.build_tokenizer()
    cfg = bench.build_config("7b", tok)  # a config only: the 7B itself is never instantiated here
    t, v = cfg.text_config, cfg.vision_config
    assert (t.num_hidden_layers, t.hidden_size, t.intermediate_size) == (32, 4096, 11008)
    assert (t.num_attention_heads, t.num_key_value_heads, t.vocab_size) == (32, 32, 32064)
    assert (v.hidden_size, v.num_hidden_layers, v.patch_size, v.image_size) == (1024, 24, 14, 336)
    assert bench.image_tokens(cfg) == 576 == cfg.image_seq_length
    assert cfg.projector_hidden_act == "gelu" and cfg.vision_feature_layer == -2
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<image>")
    tiny = bench.build_config("tiny", tok)
    assert tiny.text_config.num_hidden_layers <= 4 and tiny.text_config.hidden_size == 64
    assert tiny.vision_config.model_type == v.model_type and tiny.vision_feature_layer == -2
    assert bench.image_tokens(tiny) == tiny.image_seq_length


def test_7b_is_refused_on_cpu(bench):
    with pytest.raises(SystemExit, match="--scale 7b needs --device cuda"):
        bench.main(["--scale", "7b", "--device", "cpu"])


def test_tiny_runs_end_to_end(bench, tmp_path, capsys):
    out = tmp_path / "res.json"
    args = ["--scale", "tiny", "--device", "cpu", "--images", "1", "--mask-steps", "2", "--edit-steps", "1",
            "--questions", "2", "--folder", str(tmp_path / "model"), "--json", str(out)]
    assert bench.main(args) == 0
    res = json.loads(out.read_text())
    assert [r["stage"].split(":")[0] for r in res["stages"]] == [
        "load (fp16, device_map)", "pre-edit neighbour answers", "A", "B", "C", "answer"]
    assert res["model"]["dtype"] == "float16" and res["random_weights"] and not res["reused"]
    assert len(list((tmp_path / "model").glob("model-*.safetensors"))) > 1  # sharded, like a 7B folder
    assert "| A: mask learning" in capsys.readouterr().out
    assert bench.main(args) == 0 and json.loads(out.read_text())["reused"]  # same config: the folder is reused
