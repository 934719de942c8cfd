"""The project's general-question set: unrelated questions the edit must keep answering.

Split ``train`` feeds the general-prompt locality term of Stage C; split ``eval`` is
held out for measuring collateral refusals after an edit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PATH = Path(__file__).with_name("general_questions.json")


@dataclass(frozen=True)
class GeneralQuestion:
    prompt: str
    image: bool
    split: str


def general_questions(split: str | None = None) -> list[GeneralQuestion]:
    data = json.loads(PATH.read_text())["questions"]
    qs = [GeneralQuestion(q["prompt"], bool(q["image"]), q["split"]) for q in data]
    return [q for q in qs if split is None or q.split == split]


#: Harmless questions about an edit's own image: what kind of thing it is, and its colour. Why: the benign
#: neighbours ask about an attribute of the subject ("the cover color of the passport"), never what the thing
#: is, and edits learned to refuse "what is this?" about a document (world set, test part). These are the
#: project's own wordings (the default model's reader was taught them); ``{subj}`` is the edit's subject.
#: ``tests/test_world_wording.py`` checks that none is a near copy of a world wording.
SAME_IMAGE_QUESTIONS: tuple[str, ...] = (
    "What kind of document is this?",
    "What colour is the {subj}?",
    "What is shown in this image?",
    "What is the main colour of the {subj}?",
    "What kind of item is shown here?",
    "What is this?",
)


def same_image_question(k: int, subject: str) -> str:
    """The ``k``-th same-image question (cycled), filled with ``subject``."""
    q = SAME_IMAGE_QUESTIONS[k % len(SAME_IMAGE_QUESTIONS)]
    return q.replace("{subj}", subject or "object")
