"""The unedited model's own answers to benign prompts, used as locality targets.

As in the authors' code, the target is the first few whitespace-separated words of
the *pre-edit* answer; answers are generated greedily (deterministic), in batches,
and cached per model so Stage A, Stage C and evaluation share them.
"""
from __future__ import annotations

import torch


class LocalityCache:
    def __init__(self, adapter, max_new_tokens: int = 16, batch_size: int = 8):
        self.adapter = adapter
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        store = getattr(adapter, "_locality_store", None)
        if store is None:
            store = adapter._locality_store = {}
        self.store = store

    def _key(self, image, prompt):
        return (str(image) if image is not None else None, prompt)

    def prefetch(self, items) -> None:
        """Generate the missing answers for ``items`` = [(image|None, prompt, subject)] in batches."""
        todo = [it for it in dict.fromkeys((it[0], it[1], it[2]) for it in items)
                if self._key(it[0], it[1]) not in self.store]
        for k in range(0, len(todo), self.batch_size):
            chunk = todo[k:k + self.batch_size]
            gens = self.adapter.generate(
                [(self.adapter.encode_image(im) if im is not None else None, p, None) for im, p, _ in chunk],
                max_new_tokens=self.max_new_tokens)
            for (im, p, _), g in zip(chunk, gens):
                self.store[self._key(im, p)] = g.text

    def full_answer(self, image, prompt, subject=None) -> str:
        self.prefetch([(image, prompt, subject)])
        return self.store[self._key(image, prompt)]

    def answer(self, image, prompt, subject=None, words: int = 5) -> str:
        """The first ``words`` words of the unedited greedy answer ('' if the model said nothing)."""
        return " ".join(self.full_answer(image, prompt, subject).split()[:words])
