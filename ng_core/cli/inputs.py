"""Parsed flags -> library objects, for the commands that share ``--model`` and the dataset flags.

``ng localize``, ``ng edit``, ``ng scores``, ``ng evaluate`` and ``ng tradeoff`` all turn the same flags
(:func:`ng_core.cli.args.add_model`, :func:`ng_core.cli.args.add_data_args`) into a model, the resolved
preset (:func:`ng_core.method.presets.resolve`) and the train records; this keeps that in one place. The
imports that load torch are deferred so that ``ng --help`` and a bad flag answer without it.
"""
from __future__ import annotations

import argparse

from ng_core import models
from ng_core.method.registry import EDIT, LEARNED, get_method
from ng_core.method.train_set import train_records
from ng_core.progress import Progress, stderr_printer

READING = {"auto": None, "on": True, "off": False}


def load_model(args: argparse.Namespace):
    """The model (and run folder settings) named by :func:`~ng_core.cli.args.add_model`'s flags."""
    reading = READING[getattr(args, "reading", "auto") or "auto"]
    return models.load_model(args.model, dtype=args.dtype, device_map=args.device_map, reading=reading,
                             progress=Progress(stderr_printer()))


def check_data(args: argparse.Namespace) -> None:
    """Refuse a dataset folder, category or split that cannot give train records, before the model loads.

    Why: a local 7B checkpoint takes minutes to load; a typo in ``--data`` or ``--category`` should not wait for
    that. :func:`records` reads the same folder again once the preset says how many images to take.
    """
    cats = [c.strip() for c in args.category.split(",") if c.strip()]
    train_records(args.data, cats, args.split, 1, image_root=getattr(args, "image_root", None))


def configs(args: argparse.Namespace, adapter) -> tuple:
    """``(preset, layer, mask, edit)``: the model's preset (or ``--preset``) with the command's flags applied.

    The preset comes from the family of the edit method (``--method``; its record's ``preset``)."""
    from ng_core.method.presets import check_layers, load_preset, resolve  # deferred: torch, keeps ng --help fast

    family = get_method(getattr(args, "edit_method", None) or LEARNED, EDIT).preset
    r = resolve(load_preset(adapter.model_id, adapter.n_layers, method=family, override=getattr(args, "preset", None)),
                layer=getattr(args, "layer", None), schedule=getattr(args, "schedule", None),
                seed=getattr(args, "seed", 0) or 0,
                mask={"privacy_value": getattr(args, "privacy_value", None), "topk": getattr(args, "topk", None),
                      "threshold": getattr(args, "threshold", None), "steps": getattr(args, "mask_steps", None)},
                edit={"lr": getattr(args, "lr", None), "steps": getattr(args, "edit_steps", None),
                      "gate_scope": getattr(args, "gate_scope", None), "method": getattr(args, "edit_method", None),
                      "questions_per_image": getattr(args, "questions", None),
                      "general_weight": getattr(args, "general_weight", None),
                      "same_image_questions": getattr(args, "same_image", None),
                      "benign_image_questions": getattr(args, "benign_images", None)})
    check_layers(r.layer, adapter.n_layers)
    return r.preset, r.layer, r.mask, r.edit


def records(args: argparse.Namespace, preset: dict) -> dict:
    """``{category: train records}`` from the dataset flags; ``--max-images`` or the preset's count each."""
    cats = [c.strip() for c in args.category.split(",") if c.strip()]
    n = args.max_images if args.max_images is not None else preset["max_images"]
    return train_records(args.data, cats, args.split, n, image_root=getattr(args, "image_root", None))


def prepared(args: argparse.Namespace) -> tuple:
    """``(adapter, preset, layer, mask, edit, records)`` for ``ng localize``, ``ng edit`` and ``ng scores``.

    The ``--out`` folder and the dataset are checked first, before the model loads (minutes for a 7B checkpoint).
    """
    from ng_core.method.bundle import check_out  # deferred: torch, keeps ng --help fast

    check_out(args.out)
    check_data(args)
    adapter = load_model(args)
    preset, layer, mask, edit = configs(args, adapter)
    return adapter, preset, layer, mask, edit, records(args, preset)
