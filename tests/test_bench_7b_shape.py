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


def test_qwen25_vl_7b_config_has_its_shape(bench):
    tok = bench.build_tokenizer("qwen2_5_vl")
    cfg = bench.build_config("7b", tok, "qwen2_5_vl")  # a config only
    t, v = cfg.text_config, cfg.vision_config
    assert cfg.model_type == "qwen2_5_vl"
    assert (t.num_hidden_layers, t.hidden_size, t.intermediate_size, t.vocab_size) == (28, 3584, 18944, 152064)
    assert (t.num_attention_heads, t.num_key_value_heads) == (28, 4)
    assert (v.depth, v.hidden_size, v.out_hidden_size, v.patch_size, v.spatial_merge_size) == (32, 1280, 3584, 14, 2)
    assert bench.image_tokens(cfg, 448) == 256
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert bench.count_parameters(cfg) == pytest.approx(8.29e9, rel=0.01)  # on the meta device: nothing allocated


def test_7b_qwen_is_refused_without_cuda(bench):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="--device cuda asked, but torch sees no CUDA device"):
        bench.main(["--scale", "7b", "--family", "qwen2_5_vl"])


@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_dry_run_prints_the_memory_models_numbers(bench, family, tmp_path, capsys):
    from ng_core.models import memory

    out = tmp_path / "m.json"
    assert bench.main(["--family", family, "--dry-run", "--images", "10", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| A: mask learning (chunk of 10 images x 7 rows) | 70 |" in text
    m = json.loads(out.read_text())
    a = next(r for r in m["stages"] if r["stage"].startswith("A:"))
    s = memory.ModelShape(**m["shape"])
    assert a["per_row_mib"] * (1 << 20) >= m["tokens"]["stage_a_prefix_max"] * s.kv_token  # the per-row copy
    assert a["peak_gib"] == pytest.approx(m["weights_gib"] + 70 * a["per_row_mib"] / 1024)
    if family == "llava":  # the reading: over 20 GiB of keys/values for 10 images at max_rows=96
        assert 70 * m["tokens"]["stage_a_prefix_max"] * s.kv_token / memory.GIB > 20
        assert 7 <= a["rows_fit_24gib"] < 70  # a 24 GiB card runs Stage A in chunks of whole images


def test_tiny_qwen_runs_end_to_end(bench, tmp_path):
    out = tmp_path / "res.json"
    args = ["--scale", "tiny", "--family", "qwen2_5_vl", "--device", "cpu", "--images", "1", "--mask-steps", "2",
            "--edit-steps", "1", "--questions", "2", "--folder", str(tmp_path / "model"), "--json", str(out)]
    assert bench.main(args) == 0
    res = json.loads(out.read_text())
    assert res["family"] == "qwen2_5_vl" and res["model"]["image_tokens"] == 9
    assert [r["stage"].split(":")[0] for r in res["stages"]] == [
        "load (fp16, device_map)", "pre-edit neighbour answers", "A", "B", "C", "answer"]
    assert res["modelled"]["family"] == "qwen2_5_vl" and len(res["modelled"]["stages"]) == 6
