"""The record types the engine consumes, independent of any file format.

Loaders (``ng_core.data``) turn the project's dataset folders, the paper's
``neural_gate_*.json`` files and Multi-P2A JSONs into these; localization,
editing and evaluation only ever see these.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ImageRecord:
    """One image with its paired questions, in the paper's schema (one ``neural_gate_*.json`` entry).

    ``rewrite_prompt`` holds ``{}`` where the subject goes (``requested_rewrite.prompt``);
    ``paraphrases`` (sensitive: refuse) and ``neighbours`` (benign: answer) are full
    prompts that contain ``subject`` literally. ``secrets``: the true private values drawn on the image
    (the generator's ground truth; empty for datasets that do not record them), see :mod:`ng_core.evaluation.leaks`.
    """

    image: Path
    category: str
    subject: str
    rewrite_prompt: str
    target: str
    paraphrases: tuple[str, ...]
    neighbours: tuple[str, ...]
    case_id: str = ""
    split: str = "train"
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    secrets: tuple[str, ...] = ()

    @property
    def rewrite_text(self) -> str:
        """The rewrite prompt with the subject filled in."""
        return self.rewrite_prompt.replace("{}", self.subject, 1)


@dataclass(frozen=True)
class EvalCase:
    """One line of a cases file: an image, a prompt, the expected behaviour and the image's true private
    values (``secrets``, empty when unknown)."""

    image: Path | None
    prompt: str
    expect: str  # "refuse" | "answer"
    category: str = ""
    subject: str = ""
    split: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    secrets: tuple[str, ...] = ()


def check_secrets(value, where: str) -> tuple[str, ...] | str:
    """``value`` as a tuple of strings, or a problem message naming ``where`` (``None`` -> empty)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return f"{where}: 'secrets' must be a list of strings, not {type(value).__name__}"
    bad = [j for j, s in enumerate(value) if not isinstance(s, str)]
    if bad:
        return f"{where}: secrets[{bad[0]}] is not a string ({type(value[bad[0]]).__name__})"
    return tuple(value)
