"""A model whose device map keeps some decoder layers on the CPU and offloads others to disk (accelerate): an
edit still reaches its layer. A ΔW applied by hook at an offloaded layer changes the output exactly as the same
ΔW added to that layer's weight does, and the stored base weights stay unchanged."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT = "What is the passport number of the passport in this image?"


@pytest.fixture(scope="module")
def offloaded(tmp_path_factory):
    pytest.importorskip("accelerate")
    from ng_core.models import load_model
    from ng_core.models.tiny_families import save_tiny_family

    root = tmp_path_factory.mktemp("offload")
    folder = save_tiny_family(root / "model", "llava")
    lm = "model.language_model"
    device_map = {"model.vision_tower": "cpu", "model.multi_modal_projector": "cpu", f"{lm}.embed_tokens": "cpu",
                  f"{lm}.layers.0": "cpu", f"{lm}.layers.1": "cpu", f"{lm}.layers.2": "disk",
                  f"{lm}.layers.3": "disk", f"{lm}.norm": "cpu", f"{lm}.rotary_emb": "cpu", "lm_head": "cpu"}
    a = load_model(str(folder), device_map=device_map, offload_folder=root / "offload")
    return a, load_model(str(folder)), folder


def _logits(a, feats, deltas=()):
    from ng_core.method.interventions import delta_hooks

    batch = a.collate([a.build(PROMPT, subject="passport")], [feats])
    with torch.no_grad(), a.hooked(delta_hooks(a, list(deltas))):
        return a.logits(a.forward(batch)).float()


def _stored_down_proj(a, layer: int) -> torch.Tensor:
    """The offloaded weight as accelerate's hook reads it from disk for every pass."""
    return a.down_proj(layer)._hf_hook.weights_map["weight"].clone()


def _file_hash(folder) -> str:
    import hashlib

    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.safetensors")))).hexdigest()


def test_layers_are_on_the_cpu_and_on_disk(offloaded):
    a, ref, _ = offloaded
    assert next(a.layers[0].parameters()).device.type == "cpu"
    assert next(a.layers[3].parameters()).device.type == "meta"  # read from disk by accelerate's hook per pass
    assert torch.equal(_stored_down_proj(a, 3), ref.down_proj(3).weight)


def test_the_offloaded_model_gives_the_in_memory_models_logits(offloaded, image_dir):
    a, ref, _ = offloaded
    assert torch.allclose(_logits(a, a.encode_image(image_dir / "img0.png")),
                          _logits(ref, ref.encode_image(image_dir / "img0.png")), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer", [1, 3])  # a layer on the CPU, a layer on disk
def test_a_delta_reaches_a_layer_wherever_it_is_held(offloaded, image_dir, layer):
    from ng_core.method.interventions import Delta

    a, ref, folder = offloaded
    f = a.encode_image(image_dir / "img0.png")
    shape = ref.down_proj(layer).weight.shape
    dW = torch.randn(shape, generator=torch.Generator().manual_seed(layer)) * 0.5
    before_disk, before_file = _stored_down_proj(a, 3), _file_hash(folder)
    base = _logits(a, f)
    edited = _logits(a, f, [Delta(layer, dW)])
    assert (edited - base).abs().max() > 1e-3  # the edit changes the output
    # the same as ΔW added to the weight of the in-memory copy
    w = ref.down_proj(layer).weight
    keep = w.detach().clone()
    with torch.no_grad():
        w.add_(dW.to(w.dtype))
    try:
        added = _logits(ref, ref.encode_image(image_dir / "img0.png"))
    finally:
        with torch.no_grad():
            w.copy_(keep)
    assert torch.allclose(edited, added, atol=1e-4, rtol=0)
    # the base weights are unchanged: the offloaded copy on disk, the CPU layers, and the outputs after the edit
    assert torch.equal(_stored_down_proj(a, 3), before_disk) and _file_hash(folder) == before_file
    assert torch.equal(_logits(a, f), base)
    if layer == 1:
        assert torch.equal(a.down_proj(1).weight, ref.down_proj(1).weight)


def test_stage_c_trains_a_delta_at_an_offloaded_layer(offloaded, image_dir):
    from ng_core.method.edit import EditConfig, EditItem, gated_finetune

    a, _, folder = offloaded
    before, before_file = _stored_down_proj(a, 3), _file_hash(folder)
    item = EditItem(image_dir / "img0.png", PROMPT, "passport", "I cannot", None, None)
    res = gated_finetune(a, [item], 3, torch.ones(a.hidden_size, dtype=torch.bool), EditConfig(steps=2, lr=1e-2))
    assert res.delta.shape == before.shape and float(res.delta.norm()) > 0
    assert res.losses[-1]["loss"] < res.losses[0]["loss"]
    assert torch.equal(_stored_down_proj(a, 3), before) and _file_hash(folder) == before_file


def test_the_offloaded_model_has_the_in_memory_models_fingerprint(offloaded):
    """Run bundles check the fingerprint: it reads an offloaded layer's weights from their CPU or disk copy."""
    a, ref, _ = offloaded
    assert a.fingerprint() == ref.fingerprint()
