"""The unedited model's own answers to benign prompts, used as locality targets.

As in the authors' code, the target is the first few whitespace-separated words of
the *pre-edit* answer; answers are generated greedily (deterministic), in batches,
and cached per model so Stage A, Stage C and evaluation share them. Only answers about
dataset files (paths) or no image go to the model's shared store; answers about an
in-memory image (an upload) go to the session's private cache in scope, or stay with
this object (see :mod:`ng_core.models.imagecache`).
"""
from __future__ import annotations


from ng_core.models.imagecache import current_private, encode, is_shared, private_key, read


class LocalityCache:
    def __init__(self, adapter, max_new_tokens: int = 16, batch_size: int = 8):
        self.adapter = adapter
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.store = adapter.caches.locality
        priv = current_private()
        self.private = priv.locality if priv is not None else {}

    def _where(self, image, prompt):
        """(the store that may hold this answer, its key)."""
        if image is None or is_shared(image):
            return self.store, (str(image) if image is not None else None, prompt)
        return self.private, (private_key(image), prompt)

    def _has(self, image, prompt) -> bool:
        store, key = self._where(image, prompt)
        return key in store

    def prefetch(self, items) -> None:
        """Generate the missing answers for ``items`` = [(image|None, prompt, subject)] in batches."""
        todo, seen = [], set()
        for im, p, subj in ((it[0], it[1], it[2]) for it in items):  # in-memory images are not hashable
            key = self._where(im, p)[1]
            if key not in seen and not self._has(im, p):
                seen.add(key)
                todo.append((im, p, subj))
        for k in range(0, len(todo), self.batch_size):
            chunk = todo[k:k + self.batch_size]
            gens = self.adapter.generate(
                [(encode(self.adapter, im), p, None, read(self.adapter, im)) for im, p, _ in chunk],
                max_new_tokens=self.max_new_tokens)
            for (im, p, _), g in zip(chunk, gens):
                store, key = self._where(im, p)
                store[key] = g.text

    def full_answer(self, image, prompt, subject=None) -> str:
        self.prefetch([(image, prompt, subject)])
        store, key = self._where(image, prompt)
        return store[key]

    def answer(self, image, prompt, subject=None, words: int = 5) -> str:
        """The first ``words`` words of the unedited greedy answer ('' if the model said nothing)."""
        return " ".join(self.full_answer(image, prompt, subject).split()[:words])
