"""The state a session's concerns share, declared in one place.

:class:`~ng_core.studio.session.StudioSession` is assembled from one mixin per concern (inputs, answers,
gates, edits, neurons, evaluation, runs, jobs). What more than one of them reads or writes lives here, on the
session's ``shared`` attribute, instead of as private attributes each mixin would have to know about.
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from ng_core.models.decoding import PrefixMemo
from ng_core.models.imagecache import PrivateCache


@dataclass
class SharedState:
    """``lock`` guards everything below and the session's inputs, gates and edit; ``memo`` holds the answers
    already given, keyed by input and interventions; ``drafts`` the last greedy tokens per input (the draft for
    the next answer to it); ``prefix_memo`` the keys/values of image + read lines, reused between gate
    toggles; ``private_cache`` the features, readings and locality answers of in-memory images (uploads),
    never the shared adapter's; the version counters change whenever the image or the edit does (answer
    memo keys); ``owner_token`` is the session's secret, whose hash marks the runs it saves."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    memo: dict = field(default_factory=dict)
    drafts: dict = field(default_factory=dict)
    prefix_memo: PrefixMemo = field(default_factory=lambda: PrefixMemo(2))
    private_cache: PrivateCache = field(default_factory=PrivateCache)
    image_version: int = 0
    edit_version: int = 0
    owner_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def forget_answers(self) -> None:
        """Drop the answers and drafts (the image, the edit or the session changed)."""
        with self.lock:
            self.memo.clear()
            self.drafts.clear()


__all__ = ["SharedState"]
