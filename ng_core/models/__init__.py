"""Model registry: a name or a local folder in, a :class:`HFVLMAdapter` (any supported family) out.

Importing this package is cheap (no torch): ``ng --help`` and argument checks must not wait for torch. The
adapter classes load on first use.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ng_core.errors import ModelLoadError

DEFAULT_MODEL = "ng-mini-llava"
BUILTIN_MODELS = ("ng-mini-llava", "tiny-random")  # and tiny-random:<model_type> for each family


def load_model(spec: str | None = None, *, dtype=None, device_map=None, seed: int = 0,
               progress=None, reading: bool | None = None, offload_folder=None) -> "HFVLMAdapter":
    """Load ``spec``: ``ng-mini-llava`` (default), ``tiny-random[:model_type]`` (``tiny-random:metaspace``: the
    LLaVA build with a SentencePiece-style tokenizer), or a checkpoint folder of a supported family.

    ``device_map`` (e.g. ``"auto"``) shards a local checkpoint with accelerate (layers it sends to ``"disk"``
    are kept in ``offload_folder``); ``dtype``
    is ``fp32``/``fp16``/``bf16``. ``reading`` switches the OCR reading channel on or off
    (None: as the model folder's ``reading.json`` says; tiny-random reads nothing by default).
    Nothing is ever downloaded.
    """
    # deferred: torch and transformers; importing this package stays cheap (ng --help)
    import torch

    from ng_core.models.hf_adapter import HFVLMAdapter, parse_dtype
    from ng_core.models.mini import assemble as mini_llava
    from ng_core.models.reading import ReadingConfig
    from ng_core.models.tiny_families import TINY_FAMILIES, build_tiny_family
    from ng_core.models.tiny_random import build_tiny_random

    spec = spec or DEFAULT_MODEL
    if spec == "ng-mini-llava":
        cb = progress
        if progress is not None and hasattr(progress, "update"):  # a ng_core.progress.Progress
            def cb(done, total, message="", _p=progress):
                _p.update("assemble", done, total, message)
        folder = mini_llava.ensure_assembled(progress=cb)
        return HFVLMAdapter.from_folder(folder, dtype=dtype, device_map=device_map, model_id="ng-mini-llava",
                                        reading=reading)
    if spec.startswith("tiny-random"):
        kind = spec.split(":", 1)[1] if ":" in spec else "llava"
        if kind in ("llava", "bytelevel", "metaspace"):  # ``tiny-random`` is ``tiny-random:llava``
            style = "metaspace" if kind == "metaspace" else "bytelevel"
            model, tok, img_cfg = build_tiny_random(seed=seed, style=style,
                                                    dtype=parse_dtype(dtype) or torch.float32)
            mid = "tiny-random" if style == "bytelevel" else spec
            return HFVLMAdapter(model, tok, img_cfg, model_id=mid, source=f"built in memory (seed {seed})",
                                reading=ReadingConfig(enabled=bool(reading)))
        if kind not in TINY_FAMILIES:
            raise ModelLoadError(f"unknown tiny-random family or tiny-random style {kind!r}; use "
                                 f"tiny-random:<model_type> with one of {', '.join(TINY_FAMILIES)} "
                                 "(or tiny-random:metaspace)")
        model, tok, img_cfg, proc = build_tiny_family(kind, seed=seed, dtype=parse_dtype(dtype) or torch.float32)
        return HFVLMAdapter(model, tok, img_cfg, model_id=spec, source=f"built in memory (seed {seed})",
                            reading=ReadingConfig(enabled=bool(reading)), image_processor=proc)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"unknown model {spec!r}: not a built-in model ({', '.join(BUILTIN_MODELS)}) and no such folder"
        )
    return HFVLMAdapter.from_folder(path, dtype=dtype, device_map=device_map, reading=reading,
                                    offload_folder=offload_folder)


_LAZY = {"LlavaAdapter": "ng_core.models.llava", "Generation": "ng_core.models.generation",
         "HFVLMAdapter": "ng_core.models.hf_adapter",
         "ModelAdapter": "ng_core.models.adapter", "Sequence": "ng_core.models.adapter",
         "Batch": "ng_core.models.adapter"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["load_model", "HFVLMAdapter", "LlavaAdapter", "ModelAdapter", "Sequence", "Batch", "Generation", "DEFAULT_MODEL",
           "BUILTIN_MODELS"]
