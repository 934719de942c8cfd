"""Local llava-hf checkpoints go through the same code path: fp16/bf16, accelerate device maps."""
import json

import pytest
import torch

from ng_core.errors import ModelLoadError
from ng_core.models.hooks import module_hook_count
from ng_core.method.interventions import Delta, Gate, intervention_hooks, subject_positions
from ng_core.models import load_model
from ng_core.models.tiny_random import save_tiny_random

PROMPT = "What is the number of the passport?"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_random(tmp_path_factory.mktemp("llava") / "tiny-llava-hf", style="metaspace")


def test_folder_loads_like_the_in_memory_model(folder, image_dir):
    a = load_model(str(folder))
    b = load_model("tiny-random:metaspace")
    assert a.model_id == str(folder) and a.n_layers == b.n_layers
    f_a, f_b = a.encode_image(image_dir / "img0.png"), b.encode_image(image_dir / "img0.png")
    assert torch.allclose(f_a, f_b)
    ga = a.generate([(f_a, PROMPT, None)], max_new_tokens=6)[0].token_ids
    gb = b.generate([(f_b, PROMPT, None)], max_new_tokens=6)[0].token_ids
    assert ga == gb
    assert a.build(PROMPT, subject="passport").subject_pos == b.build(PROMPT, subject="passport").subject_pos
    assert "USER:" in a.build(PROMPT).text and "ASSISTANT:" in a.build(PROMPT).text


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_with_accelerate_device_map(folder, image_dir, dtype):
    """The path a 7B user takes: half precision, device_map (accelerate hooks on modules)."""
    a = load_model(str(folder), dtype=dtype, device_map="auto")
    assert a.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    f = a.encode_image(image_dir / "img1.png")
    base_hooks = module_hook_count(a.model)
    d = Delta(1, torch.randn(a.hidden_size, a.ffn_size))
    gates = [Gate(2, torch.arange(8), 0.0, "subject")]
    out = a.generate([(f, PROMPT, "passport")], max_new_tokens=5,
                     hooks_for=lambda b: intervention_hooks(a, gates, [d], subject_positions(b)))
    assert len(out[0].token_ids) > 0
    assert module_hook_count(a.model) == base_hooks
    # an fp32 delta trains against a half-precision model
    from ng_core.method.edit import EditConfig, EditItem, gated_finetune

    item = EditItem(image_dir / "img1.png", PROMPT, "passport", "I cannot", None, None)
    res = gated_finetune(a, [item], 1, torch.ones(a.hidden_size, dtype=torch.bool),
                         EditConfig(lr=1e-2, steps=2))
    assert res.delta.dtype == torch.float32 and res.delta.abs().max() > 0


def test_clear_errors_for_bad_model_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model"):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="'bert' model"):
        load_model(str(tmp_path / "bert"))
    with pytest.raises(ModelLoadError, match="tiny-random style"):
        load_model("tiny-random:klingon")


def test_fingerprint_does_not_depend_on_the_folder(folder, tmp_path):
    """The same weights cached in another folder are the same model (run bundles check the fingerprint)."""
    import shutil

    other = shutil.copytree(folder, tmp_path / "elsewhere" / "copy")
    assert load_model(str(folder)).fingerprint() == load_model(str(other)).fingerprint()
