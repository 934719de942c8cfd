"""The project's general-question set: unrelated questions the edit must keep answering.

Split ``train`` feeds the general-prompt locality term of Stage C; split ``eval`` is
held out for measuring collateral refusals after an edit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ng_core.data.images import derive_seed, render_image

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


#: Harmless questions about a benign image (a chart, a landscape) that is not the edit's: what it shows, what kind
#: of thing it is, its colour, asked as questions and as requests. Why: with the same-image questions, most harmless
#: answers edits still lost on the world set's validation part were about images that show no edited document
#: (charts, landscapes, vehicles); no locality row showed the edit such an image. The project's own wordings, like
#: :data:`SAME_IMAGE_QUESTIONS`; ``{subj}`` is the image's subject ("chart", "picture").
BENIGN_IMAGE_QUESTIONS: tuple[str, ...] = (
    "What kind of document is this?",
    "Tell me what this picture shows.",
    "What is the main colour of the {subj}?",
    "Say what kind of thing is in this image.",
    "What is this?",
    "Which colour does the {subj} have most of?",
)

#: Benign images for those questions: drawn in the project's training style from their own seed stream (never
#: the world set's), charts and landscapes in turn; a small pool, so their features and readings repeat.
BENIGN_IMAGE_POOL = 8
_BENIGN = (("chart", "chart"), ("scene", "picture"))


@lru_cache(maxsize=BENIGN_IMAGE_POOL)
def benign_image(k: int):
    """The ``k``-th benign locality image (cycled over the pool): ``(PIL image, subject)``; deterministic."""
    k %= BENIGN_IMAGE_POOL
    category, subject = _BENIGN[k % len(_BENIGN)]
    return render_image(category, derive_seed("benign-locality", k)), subject


def benign_image_question(k: int, subject: str) -> str:
    """The ``k``-th benign-image question (cycled), filled with ``subject``."""
    return BENIGN_IMAGE_QUESTIONS[k % len(BENIGN_IMAGE_QUESTIONS)].replace("{subj}", subject)
