"""Argument types and shared flags for the CLI: every number checked when it is parsed, before any work is done.

Each type is an ``argparse`` type: a bad value stops the command with one line naming the option
and the allowed range (exit status 2), never a run saved with a NaN or zero edit. :func:`add_model` and
:func:`add_data_args` add the flags several commands share (turned into objects by :mod:`ng_core.cli.inputs`).
"""
from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from ng_core.data.constants import ALL_CATEGORIES
from ng_core.models.prompt_guard import MAX_NEW_TOKENS
from ng_core.storage import writable

DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential", "cpu")


def _number(text: str, kind):
    try:
        v = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return v


def positive_float(text: str) -> float:
    v = _number(text, float)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text, float)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return v


def finite_float(text: str) -> float:
    return _number(text, float)


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    v = _number(text, float)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0 and below 1")
    return v


def open_fraction(text: str) -> float:
    """A number in (0, 1]."""
    v = _number(text, float)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 1")
    return v


def bounded_int(lo: int, hi: int):
    def parse(text: str) -> int:
        v = _number(text, int)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {lo} and {hi}")
        return v

    parse.__name__ = f"int {lo}..{hi}"
    return parse


positive_int = bounded_int(1, 1_000_000)
steps = bounded_int(1, 100_000)
new_tokens = bounded_int(1, MAX_NEW_TOKENS)
seed = bounded_int(0, 2 ** 32 - 1)


def out_file(text: str) -> str:
    """A file the command will write (JSON, JSON Lines): checked before any work, never a folder."""
    path = Path(text).expanduser()
    if not text.strip() or path.name in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file to write, e.g. {path / 'result.json'}")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a regular file")
    parent = writable.nearest_existing(path)
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} is not writable")
    why = writable.cannot_create_in(parent)
    if why:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {parent} does not take new files ({why})")
    return text


def device_map(text: str) -> str:
    """An accelerate device map: auto, balanced, balanced_low_0, sequential, cpu, cuda, cuda:N, or N."""
    t = text.strip()
    if t in DEVICE_MAPS or re.fullmatch(r"(cuda|mps|xpu)(:\d+)?|\d+", t):
        return t
    raise argparse.ArgumentTypeError(f"unknown device map {text!r}; use one of {', '.join(DEVICE_MAPS)}, "
                                     "cuda, cuda:N or a device number")


def categories(text: str) -> str:
    cats = [c.strip() for c in text.split(",") if c.strip()]
    if not cats:
        raise argparse.ArgumentTypeError("name at least one category, e.g. passport,receipt")
    return ",".join(cats)


def unknown_generated(cats, data) -> str | None:
    """Without ``data`` the generator draws the dataset: the message naming ``cats`` it cannot draw (None: all fine),
    so a command refuses them at once instead of after drawing every image."""
    if data:
        return None
    unknown = [c for c in cats if c not in ALL_CATEGORIES]
    return (f"--categories: unknown {', '.join(unknown)}; the generator draws {', '.join(ALL_CATEGORIES)} "
            "(or give --data)") if unknown else None


def layers(text: str) -> str:
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or not all(re.fullmatch(r"\d{1,4}", p) for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a layer number or a comma-separated list of them")
    return ",".join(parts)


# ------------------------------------------------------------------------------------------ shared flags
MODEL_HELP = ("model: 'ng-mini-llava' (default, embedded), 'tiny-random' (random, for tests; "
              "'tiny-random:<model_type>' for another family, e.g. tiny-random:qwen2_vl), or a local checkpoint "
              "folder of a supported family (LLaVA-1.5/NeXT/OneVision, Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Gemma 3, "
              "InternVL3, SmolVLM, Idefics3, Mistral3; found from config.json)")


def add_model(p: argparse.ArgumentParser, with_run: bool = False) -> None:
    """``--model``, ``--dtype``, ``--device-map``, ``--reading`` (and ``--run`` with ``with_run``)."""
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16"],
                   help="weights dtype for a local checkpoint (default: as saved)")
    p.add_argument("--device-map", default=None, type=device_map,
                   help="accelerate device map for a local checkpoint, e.g. 'auto' to shard over GPUs")
    p.add_argument("--reading", default="auto", choices=["auto", "on", "off"],
                   help="OCR lines of the image in the prompt: auto = as the model folder says (on for "
                        "ng-mini-llava, off for llava-hf checkpoints)")
    if with_run:
        p.add_argument("--run", default=None, help="apply the edit (deltas) of this run bundle folder")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The dataset, categories, split and image count an edit learns from, its seed, schedule and preset."""
    p.add_argument("--data", required=True, help="dataset folder (project format, or paper-format JSONs)")
    p.add_argument("--image-root", default=None, help="image root for paper-format datasets")
    p.add_argument("--category", required=True, type=categories, help="category id(s), comma-separated, e.g. passport,receipt")
    p.add_argument("--split", default="train", help="split whose images are used (default: train)")
    p.add_argument("--max-images", type=positive_int, default=None, help="images per category (default: preset, 10)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--schedule", choices=["fast", "naive"], default=None,
                   help="fast (cached prefixes, default) or naive (the reference code's cost); same results")
    p.add_argument("--preset", default=None,
                   help="hyperparameter preset: a shipped name (see `ng presets`) or a JSON file "
                        "(default: chosen from the model)")
