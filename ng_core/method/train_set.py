"""The train images an edit or a localization learns from, picked from a dataset folder.

Shared by the CLI commands (``ng localize``, ``ng edit``, ``ng scores``, ``ng tradeoff``) so that each one
chooses the same images and names the same errors for an unknown category or an empty split.
"""
from __future__ import annotations

from ng_core.data import load_dataset
from ng_core.data.records import ImageRecord
from ng_core.errors import DataError


def train_records(data: str, categories: list[str], split: str, n: int,
                  image_root: str | None = None) -> dict[str, list[ImageRecord]]:
    """``{category: the first n records of split}`` from the dataset folder ``data``.

    Raises :class:`~ng_core.errors.DataError` for a category the dataset does not have, or one with no
    image in ``split``.
    """
    ds = load_dataset(data, image_root=image_root)
    unknown = [c for c in categories if c not in ds.categories]
    if unknown:
        raise DataError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} in {data}; "
                        f"available: {', '.join(ds.categories)}")
    out = {}
    for c in categories:
        recs = ds.records(category=c, split=split)
        if not recs:
            raise DataError(f"{data} has no '{split}' images for category {c!r}")
        out[c] = recs[:n]
    return out
