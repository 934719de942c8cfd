"""Readings of public card files kept on disk beside them, so a new process does not run OCR on them again.

Why: the guided demo's held-out cards are public synthetic files, drawn once into their folder and reused; reading
one takes 1.2–2.9 s on 2 cores, which was most of the demo's before/after step on a server just started. Only files
of a folder the caller names go here (the demo's world-set folder: never an upload, never a user's dataset). The
store is ``readings-<reading id>.json`` in that folder, keyed by file name and content hash: a redrawn card is read
again, and another reader (settings, OCR version) uses another file. A damaged store is read as empty and rewritten.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ng_core.storage.atomic_file import write_atomic


def _key(path: Path) -> str:
    return f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:20]}"


def _load(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and (v is None or isinstance(v, str))}


def read_with_store(adapter, folder, images) -> int:
    """Put the readings of ``images`` (files inside ``folder``) into ``adapter``'s shared reading cache: from the
    store where it has them, else read now and stored. Returns how many were read now (0: none, or the model does
    not read)."""
    rid = adapter.reading_id
    if rid is None:
        return 0
    folder = Path(folder)
    store_path = folder / f"readings-{rid}.json"
    stored = _load(store_path)
    fresh = 0
    for im in dict.fromkeys(Path(i) for i in images):
        if folder.resolve() not in im.resolve().parents:
            raise ValueError(f"{im} is not inside {folder}: only that folder's files are stored")
        k = _key(im)
        if k in stored:
            adapter.remember_reading(im, stored[k])
        else:
            stored[k] = adapter.read_image(im)
            fresh += 1
    if fresh:
        write_atomic(store_path, json.dumps(stored, indent=1, sort_keys=True) + "\n")
    return fresh


__all__ = ["read_with_store"]
