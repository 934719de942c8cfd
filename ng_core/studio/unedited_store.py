"""The unedited model's answers to the guided demo's held-out cards, kept on disk beside the cards.

Why: the before/after step screens its held-out cards with the unedited model (which of them really leak) and asks
their harmless questions unedited. The cards are public synthetic files drawn once into their folder and the
unedited model is the same for every presenter, so those answers are the same on the next server start: kept
beside the cards, a restarted server asks the model only with the edits. The store is
``unedited-<id>.json`` in the cards' folder, where the id hashes what an answer depends on besides the card and
the question (the model's fingerprint, its reading switch and reader, the answer length, the code's commit where
there is one, the versions of this package and of torch: answers stored by other code are asked again); entries are keyed by card file (name and content hash), question and subject. Only the
demo's world-set folder is stored this way: never an upload, never a user's dataset.
"""
from __future__ import annotations

import functools
import hashlib
import json
import threading
from pathlib import Path

import torch

import ng_core
from ng_core.storage.code_revision import code_revision
from ng_core.storage.file_keyed_store import file_key, load_store, save_store
from ng_core.studio.answers import Answer, judge_text

_LOCK = threading.Lock()  # one writer at a time in this process (a preparing job and a page may both store)


@functools.lru_cache(maxsize=1)
def _code() -> str | None:
    return code_revision()


def store_path(adapter, folder, max_new_tokens: int) -> Path:
    """Where ``adapter``'s unedited answers of ``max_new_tokens`` tokens about ``folder``'s cards are kept."""
    what = [adapter.fingerprint(), getattr(adapter, "reads", None), getattr(adapter, "reading_id", None),
            int(max_new_tokens), _code(), ng_core.__version__, torch.__version__]
    sid = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"unedited-{sid}.json"


def _entry(folder, case) -> str | None:
    """The case's store key, or None when its image is not a file of ``folder`` (such answers are not stored)."""
    if case.image is None:
        return None
    try:
        return f"{file_key(Path(folder), case.image)}|{case.subject or ''}|{case.prompt}"
    except (OSError, ValueError):
        return None


def stored_unedited(adapter, folder, cases: list, max_new_tokens: int) -> list:
    """The stored unedited :class:`Answer` of each case, or None where the store has none."""
    stored = load_store(store_path(adapter, folder, max_new_tokens))
    out = []
    for c in cases:
        text = stored.get(_entry(folder, c) or "")
        out.append(None if text is None else Answer(text, judge_text(text), [], 0.0, c.prompt, c.subject or None))
    return out


def store_unedited(adapter, folder, cases: list, answers: list, max_new_tokens: int) -> int:
    """Keep the unedited ``answers`` to ``cases`` beside the cards; returns how many entries were added."""
    new = {k: a.text for k, a in ((_entry(folder, c), a) for c, a in zip(cases, answers)) if k is not None}
    if not new:
        return 0
    path = store_path(adapter, folder, max_new_tokens)
    with _LOCK:
        stored = load_store(path)
        added = sum(k not in stored for k in new)
        stored.update(new)
        save_store(path, stored)
    return added


__all__ = ["store_path", "store_unedited", "stored_unedited"]
