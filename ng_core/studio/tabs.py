"""Sessions that outlive a reload: a browser tab finds its :class:`StudioSession` again, its job still running.

Why: reloading the tab during the demo's edit lost the card, its private values and the edit, and left the job
running unseen. The dashboard keys each session by a random token in the tab's URL *and* a value the browser
holds (its cookie), hashed together (:func:`tab_key`): a reload of the same tab finds the session; the same link
opened in another browser does not (it would otherwise hand over a private image and its values).

:class:`TabRegistry` keeps at most ``max_sessions`` sessions for at most ``max_age`` seconds since last use; a
session pushed out is closed (its job cancelled, its private cache dropped).
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict


def new_token() -> str:
    """A fresh, unguessable token for a tab's URL."""
    return secrets.token_urlsafe(12)


def xsrf_secret(cookie: str | None) -> str | None:
    """The stable token inside a Streamlit/Tornado XSRF cookie (``2|mask|masked|time``: masked anew on each
    request, so the cookie's text changes while the token does not), as hex; a v1 cookie as it is."""
    value = (cookie or "").strip("\"'")
    if not value:
        return None
    if not value.startswith("2|"):
        return value
    try:
        _, mask_hex, masked_hex, _ = value.split("|")
        mask, masked = bytes.fromhex(mask_hex), bytes.fromhex(masked_hex)
    except ValueError:
        return None
    if not mask:
        return None
    return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()


def tab_key(token: str | None, browser_secret: str | None) -> str | None:
    """The registry key of a tab (None when either part is missing: then nothing is found or kept)."""
    if not token or not browser_secret:
        return None
    return hashlib.sha256(f"{token}\0{browser_secret}".encode()).hexdigest()


class TabRegistry:
    """A small LRU of ``{key: (session, page_state)}`` shared by the server's browser sessions."""

    def __init__(self, max_sessions: int = 16, max_age: float = 3600.0):
        self.max_sessions, self.max_age = int(max_sessions), float(max_age)
        self._items: OrderedDict[str, tuple[object, dict, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str | None):
        """(session, page state) kept under ``key``, or (None, {})."""
        if key is None:
            return None, {}
        with self._lock:
            expired = self._expire()
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self._items[key] = (item[0], item[1], time.monotonic())
        for s in expired:
            if hasattr(s, "close"):
                s.close()
        return (item[0], dict(item[1])) if item is not None else (None, {})

    def put(self, key: str | None, session, page_state: dict | None = None) -> None:
        """Keep ``session`` (and the page's own state worth restoring) under ``key``."""
        if key is None:
            return
        dropped = []
        with self._lock:
            self._items[key] = (session, dict(page_state or {}), time.monotonic())
            self._items.move_to_end(key)
            while len(self._items) > self.max_sessions:
                dropped.append(self._items.popitem(last=False)[1][0])
            dropped += self._expire()
        for s in dropped:
            if s is not session and hasattr(s, "close"):
                s.close()

    def _expire(self) -> list:
        now, out = time.monotonic(), []
        for k in [k for k, (_, _, t) in self._items.items() if now - t > self.max_age]:
            out.append(self._items.pop(k)[0])
        return out

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["TabRegistry", "new_token", "tab_key", "xsrf_secret"]
