"""Readings of public card files kept on disk beside them, so a new process does not run OCR on them again.

Why: the guided demo's held-out cards are public synthetic files, drawn once into their folder and reused; reading
one takes 1.2–2.9 s on 2 cores, which was most of the demo's before/after step on a server just started. Only files
of a folder the caller names go here (the demo's world-set folder: never an upload, never a user's dataset). The
store is ``readings-<reading id>.json`` in that folder, keyed by file name and content hash: a redrawn card is read
again, and another reader (settings, OCR version) uses another file. A damaged store is read as empty and rewritten.
"""
from __future__ import annotations

from pathlib import Path

from ng_core.storage.file_keyed_store import file_key, load_store, save_store


def read_with_store(adapter, folder, images, pause=None) -> int:
    """Put the readings of ``images`` (files inside ``folder``) into ``adapter``'s shared reading cache: from the
    store where it has them, else read now and stored (``pause()`` first, when given: background work waiting its
    turn). Returns how many were read now (0: none, or the model does not read)."""
    rid = adapter.reading_id
    if rid is None:
        return 0
    folder = Path(folder)
    store_path = folder / f"readings-{rid}.json"
    stored = load_store(store_path)
    fresh = 0
    for im in dict.fromkeys(Path(i) for i in images):
        k = file_key(folder, im)
        if k in stored:
            adapter.remember_reading(im, stored[k])
        else:
            if pause is not None:
                pause()
            stored[k] = adapter.read_image(im)
            fresh += 1
    if fresh:
        save_store(store_path, stored)
    return fresh


__all__ = ["read_with_store"]
