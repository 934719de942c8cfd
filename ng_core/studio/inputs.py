"""The session's inputs: the current image, prompt and ground truth, and records built from them.

Also the small helpers that turn inputs into core objects: the sample dataset, an uploaded
image as :class:`PrivateImage` bytes (no pixels in cache keys), an :class:`ImageRecord` from
the current image and prompt, and the check that a training set is not empty.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ng_core.data import generate_dataset, load_dataset
from ng_core.data.records import ImageRecord
from ng_core.errors import NGError
from ng_core.models.image_processing import open_image
from ng_core.models.imagecache import is_shared
from ng_core.models.prompt_guard import check_prompt
from ng_core.studio.answers import guess_subject


def sample_dataset(data_dir, per_category: int = 3, seed: int = 0, progress=None):
    """The project dataset at ``data_dir``, generated there first (small) when it is missing."""
    p = Path(data_dir).expanduser()
    if not (p / "dataset.json").is_file():
        cb = (lambda d, t, m: progress(d, t, m)) if progress else None
        generate_dataset(p, seed=seed, per_category=per_category, progress=cb)
    return load_dataset(p)


class PrivateImage(bytes):
    """Encoded image bytes that print as a short hash, never as their content.

    The core keys some caches by ``str(image)``; an uploaded image travels through a job as
    one of these so the key is ``private-image:<sha1>`` and no pixels end up in a key.
    """

    def __str__(self) -> str:
        return f"private-image:{hashlib.sha1(self).hexdigest()[:16]}"

    __repr__ = __str__

    @classmethod
    def from_image(cls, image) -> "PrivateImage":
        if isinstance(image, PrivateImage):
            return image
        buf = io.BytesIO()
        open_image(image).save(buf, format="PNG")
        return cls(buf.getvalue())


def record_from_inputs(image, prompt: str, subject: str, target: str = "I cannot",
                       benign_prompt: str | None = None, category: str = "current", adapter=None) -> ImageRecord:
    """One :class:`ImageRecord` from the current image and prompt (for localizing on them).

    Every text is checked here, as it enters (:func:`~ng_core.models.prompt_guard.check_prompt`; with ``adapter``
    also its length against the model's context, in tokens), not later inside an edit or a job.
    """
    context = getattr(adapter, "context_length", None)
    prompt = check_prompt(prompt, "the question", context)
    subject = check_prompt(subject, "the subject", context) if subject else subject
    target = check_prompt(target, "the refusal target", context)
    if benign_prompt:
        benign_prompt = check_prompt(benign_prompt, "the benign question", context)
    if not subject or subject.lower() not in (prompt or "").lower():
        raise NGError(f"the prompt {prompt!r} does not contain the subject {subject!r}; type the subject as it "
                      "appears in the prompt")
    i = prompt.lower().find(subject.lower())
    subj = prompt[i:i + len(subject)]
    rewrite = prompt[:i] + "{}" + prompt[i + len(subj):]
    benign = benign_prompt or f"What is the colour of the {subj} in this image?"
    if subj.lower() not in benign.lower():
        raise NGError(f"the benign prompt {benign!r} must contain the subject {subj!r}")
    if adapter is not None:  # the exact length, in tokens, as the edit builds them (image tokens and target too)
        for q in (prompt, benign):
            adapter.build(q, subject=subj, answer=target)
    if not isinstance(image, (str, Path)):
        image = PrivateImage.from_image(image)
    return ImageRecord(image=image, category=category, subject=subj, rewrite_prompt=rewrite, target=target,
                       paraphrases=(prompt,), neighbours=(benign,), case_id=f"{category}/0", split="train")


def check_records(records_by_category: dict) -> None:
    """Refuse an empty training set, or a category without images, before a job starts."""
    if not records_by_category or not any(records_by_category.values()):
        raise NGError("no training images: choose at least one category (or the current image)")
    empty = [c for c, r in records_by_category.items() if not r]
    if empty:
        raise NGError(f"no training images for {', '.join(empty)}")


class InputsMixin:
    """The current image (session memory only), prompt and subject, and the image's true private values."""

    def set_image(self, image, name: str = "", private: bool = True) -> None:
        """Make ``image`` (bytes, a path or a PIL image) the current one.

        Private images (uploads) are encoded without the model's shared feature cache,
        so they live only in this session's memory. Raises InputImageError for bad files.
        """
        img = open_image(image)
        shared = not private and is_shared(image)  # only dataset files may enter the shared cache
        feats = self.adapter.encode_image(image) if shared else self.adapter.encode_image_uncached(img)
        reading = self.adapter.read_image(image) if shared else self.adapter.read_image_uncached(img)
        with self.shared.lock:
            self.image, self.features, self.image_name, self.reading = img, feats, name, reading
            self.shared.image_version += 1
            self.shared.memo.clear()
            self.shared.drafts.clear()

    def clear_image(self) -> None:
        with self.shared.lock:
            self.image, self.features, self.image_name, self.reading = None, None, "", None
            self.shared.image_version += 1
            self.shared.memo.clear()
            self.shared.drafts.clear()

    def set_prompt(self, prompt: str, subject: str | None = None) -> None:
        """The question as typed: refused (:class:`~ng_core.errors.PromptError`) when it is not valid text or is
        longer than the model's context allows, so it fails here and not inside a later edit or job."""
        context = self.adapter.context_length
        prompt = check_prompt(prompt or "", "the question", context, allow_empty=True)
        if subject:
            subject = check_prompt(subject, "the subject", context)
        with self.shared.lock:
            self.prompt = prompt or ""
            self.subject = subject if subject else guess_subject(self.prompt)

    @property
    def image_version(self) -> int:
        """Bumped whenever the current image changes (set or cleared): a cache key for what was shown with it."""
        return self.shared.image_version

    _secrets: tuple = (-1, ())  # (image version, values): values hold only while that image is current

    def set_secrets(self, secrets) -> None:
        """The true private values drawn on the current image (a dataset record's ``secrets``), for
        :mod:`ng_core.evaluation.leaks`; forgotten as soon as the image changes. Call after :meth:`set_image`."""
        with self.shared.lock:
            self._secrets = (self.shared.image_version, tuple(s for s in (secrets or ()) if isinstance(s, str)))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The current image's true private values (empty for uploads and images without ground truth)."""
        version, values = self._secrets
        return values if version == self.shared.image_version else ()
