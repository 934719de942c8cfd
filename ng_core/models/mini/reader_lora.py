"""The reader stage of ``ng-mini-llava``: LoRA factors and a projector that teach it to use the text it reads.

``assets/ng-mini-llava/reader/`` holds what :mod:`ng_train.mini.train_reader` made: ``lora.safetensors``
(peft LoRA factors of every linear layer of SmolLM2, bf16), ``projector.safetensors`` (trained with them)
and ``reader.json`` (how, with file hashes). At assembly the factors are merged into the weights with peft's
``merge_and_unload``, so the assembled folder is still a plain ``LlavaForConditionalGeneration`` that Neural
Gate edits like any other, and ``reading.json`` switches the OCR reading channel on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ng_core.errors import ModelLoadError
from ng_core.models.reading import ReadingConfig

ASSETS_DIR = Path(__file__).resolve().parents[3] / "assets" / "ng-mini-llava"
READER_DIR = ASSETS_DIR / "reader"
LORA_FILE = READER_DIR / "lora.safetensors"
PROJECTOR_FILE = READER_DIR / "projector.safetensors"
META_FILE = READER_DIR / "reader.json"

#: Every linear layer of the language model (peft matches the full module name).
LORA_TARGET_REGEX = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"

#: How the shipped model reads (written as the assembled folder's ``reading.json``).
READING = ReadingConfig(enabled=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def shipped_reader(folder: Path = READER_DIR) -> dict | None:
    """The reader record (meta + file hashes), None when no reader ships; corrupt files are an error."""
    meta_file = Path(folder) / META_FILE.name
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as e:
        raise ModelLoadError(f"{meta_file} is not valid JSON: {e}") from None
    files = {}
    for name in (LORA_FILE.name, PROJECTOR_FILE.name):
        p = Path(folder) / name
        if not p.is_file():
            raise ModelLoadError(f"{p} is missing: the reader in {folder} is incomplete")
        digest = _sha256(p)
        want = (meta.get("sha256") or {}).get(name)
        if want and want != digest:
            raise ModelLoadError(
                f"{p} does not match the sha256 recorded in {meta_file}: restore it from the repository or "
                "retrain it with `python -m ng_train.mini.train_reader`"
            )
        files[name] = digest
    return {"folder": str(folder), "sha256": files, "meta": meta}


def reading_config(reader: dict | None) -> ReadingConfig:
    """How a shipped reader reads: the config its training recorded in ``reader.json`` (``READING`` if none).

    The reader was trained on prompts built with that config (e.g. with the colour line), so the assembled
    model must read the same way."""
    rec = ((reader or {}).get("meta") or {}).get("reading")
    if not isinstance(rec, dict):
        return READING
    known = {f.name for f in dataclasses.fields(ReadingConfig)}
    return dataclasses.replace(READING, **{k: v for k, v in rec.items() if k in known and k != "format_version"})


def vision_feature_layer(adapter) -> int:
    return int(adapter.model.config.vision_feature_layer)


def load_factors(peft_model, projector, folder: Path) -> int:
    """Load the reader in ``folder`` into a peft-wrapped model (LoRA factors) and its projector; the tensor count.

    Shared by assembly (which then merges) and a training run that continues a saved reader."""
    from peft import set_peft_model_state_dict  # deferred: peft imports transformers

    folder = Path(folder)
    projector.load_state_dict(load_file(str(folder / PROJECTOR_FILE.name)), strict=True)
    state = {k: v.to(torch.float32) for k, v in load_file(str(folder / LORA_FILE.name)).items()}
    res = set_peft_model_state_dict(peft_model, state)
    unexpected = list(getattr(res, "unexpected_keys", []) or [])
    if unexpected:
        raise ModelLoadError(f"{folder / LORA_FILE.name}: {len(unexpected)} LoRA tensors do not fit the model, "
                             f"e.g. {unexpected[0]}")
    return len(state)


def apply_reader(model, reader: dict) -> dict:
    """Load the reader's projector into ``model`` and merge its LoRA factors into the LM weights (in place)."""
    from peft import LoraConfig, get_peft_model  # deferred: peft imports transformers

    folder = Path(reader["folder"])
    lora = reader["meta"].get("lora", {})
    cfg = LoraConfig(r=int(lora["r"]), lora_alpha=int(lora["alpha"]), lora_dropout=0.0, bias="none",
                     target_modules=lora.get("target_modules", LORA_TARGET_REGEX))
    peft_model = get_peft_model(model, cfg)
    n = load_factors(peft_model, model.model.multi_modal_projector, folder)
    merged = peft_model.merge_and_unload()
    if merged is not model:  # merge_and_unload hands back the (now plain) base model
        raise ModelLoadError("internal error: peft returned another model object after merging")
    return {"lora_tensors": n, "r": int(lora["r"])}


__all__ = ["LORA_FILE", "LORA_TARGET_REGEX", "META_FILE", "PROJECTOR_FILE", "READER_DIR", "READING",
           "apply_reader", "load_factors", "reading_config", "shipped_reader", "vision_feature_layer"]
