"""A small JSON store of text results about the files of one folder, kept in that folder and keyed by file content.

Why: the guided demo's held-out cards are public synthetic files drawn once into their folder; what a server works
out about them (the reader's lines, the unedited model's answers) is the same for the next server, so it is kept
beside them. An entry is keyed by the file's name and a hash of its bytes (a redrawn card is worked out again); a
damaged store is read as empty and rewritten; only files inside the folder are taken.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ng_core.storage.atomic_file import write_atomic


def file_key(folder: Path, path) -> str:
    """``name:hash`` of ``path``, a file inside ``folder`` (ValueError for any other file)."""
    path = Path(path)
    if Path(folder).resolve() not in path.resolve().parents:
        raise ValueError(f"{path} is not inside {folder}: only that folder's files are stored")
    return f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:20]}"


def load_store(path: Path) -> dict:
    """The store's ``{key: text or None}`` ({} when missing or damaged)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and (v is None or isinstance(v, str))}


def save_store(path: Path, entries: dict) -> None:
    """Write ``entries`` at ``path`` in one step (a reader never sees half a store)."""
    write_atomic(Path(path), json.dumps(entries, indent=1, sort_keys=True) + "\n")


__all__ = ["file_key", "load_store", "save_store"]
