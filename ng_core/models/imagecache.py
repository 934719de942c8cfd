"""Which images may enter the shared model's caches: files on disk only.

One adapter serves every browser session, so whatever it keeps (its feature cache, the
locality answers of :class:`~ng_core.method.locality.LocalityCache`) is shared. The rule: an
image given as a path (``str`` / ``Path``: a file of a dataset) is cached there, for
speed; any other image (an upload held in memory: PIL image, bytes,
:class:`~ng_core.studio.session.PrivateImage`) is never retained by a shared object. Its
features, what the OCR read from it and the unedited model's answers about it go to the :class:`PrivateCache` in
scope (a :class:`~ng_core.studio.session.StudioSession` owns one and puts it in scope around
its calls and jobs), or, with none in scope, live only for the call.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

_SCOPE: contextvars.ContextVar["PrivateCache | None"] = contextvars.ContextVar("ng_private_cache", default=None)


def is_shared(image) -> bool:
    """True for images that may be cached by shared objects: paths to files (dataset images)."""
    return isinstance(image, (str, Path))


def private_key(image) -> str:
    """A content key for an in-memory image (never its pixels, never an object id)."""
    if isinstance(image, (bytes, bytearray)):
        return "bytes:" + hashlib.sha1(bytes(image)).hexdigest()
    if hasattr(image, "tobytes") and hasattr(image, "size") and hasattr(image, "mode"):  # PIL
        h = hashlib.sha1(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
        return "pil:" + h.hexdigest()
    return "obj:" + hashlib.sha1(str(image).encode()).hexdigest()


class PrivateCache:
    """A session's own cache for in-memory images: projected features and locality answers.

    Bounded like the adapter's cache; dropped with the session (``clear()`` empties it).
    """

    def __init__(self, max_features: int = 16):
        self.max_features = int(max_features)
        self.features: OrderedDict = OrderedDict()
        self.locality: dict = {}
        self.readings: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def _memo(self, store: OrderedDict, adapter, image, compute):
        """``compute(image)`` through the bounded LRU ``store``, keyed by the image's content."""
        key = (id(adapter), private_key(image))
        with self._lock:
            if key in store:
                store.move_to_end(key)
                return store[key]
        value = compute(image)
        with self._lock:
            store[key] = value
            while len(store) > self.max_features:
                store.popitem(last=False)
        return value

    def feature(self, adapter, image):
        return self._memo(self.features, adapter, image, adapter.encode_image_uncached)

    def reading(self, adapter, image):
        """What the OCR read (the prompt's reading block), kept with the session like the features."""
        return self._memo(self.readings, adapter, image, adapter.read_image_uncached)

    def clear(self) -> None:
        with self._lock:
            self.features.clear()
            self.locality.clear()
            self.readings.clear()


def current_private() -> PrivateCache | None:
    """The private cache in scope on this thread (None outside a session's call)."""
    return _SCOPE.get()


@contextlib.contextmanager
def private_scope(cache: PrivateCache | None):
    """Route in-memory images to ``cache`` for the duration of the block (this thread only)."""
    token = _SCOPE.set(cache)
    try:
        yield cache
    finally:
        _SCOPE.reset(token)


def encode(adapter, image):
    """Projected features of ``image``: shared cache for paths, the private cache (or none) otherwise."""
    if image is None:
        return None
    if is_shared(image):
        return adapter.encode_image(image)
    cache = _SCOPE.get()
    if cache is None:
        return adapter.encode_image_uncached(image)
    return cache.feature(adapter, image)


def read(adapter, image) -> str | None:
    """The reading block of ``image`` (OCR lines for the prompt), cached by the same rule as features."""
    if image is None or not getattr(adapter, "reads", False):
        return None
    if is_shared(image):
        return adapter.read_image(image)
    cache = _SCOPE.get()
    if cache is None:
        return adapter.read_image_uncached(image)
    return cache.reading(adapter, image)


__all__ = ["PrivateCache", "current_private", "encode", "read", "is_shared", "private_key", "private_scope"]
