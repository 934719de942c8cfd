"""Judges of ``ng-mini-llava``'s answers: does an answer name the image's category, is it a refusal.

Why a module of its own: stage 3 of the projector training keeps the weights that name categories best on
validation images, and both evaluations score answers the same way, so the judges cannot live in one of
those scripts. The category lists are the dataset's (:mod:`ng_core.data.constants`) and the refusal judge is
the project's (:func:`ng_core.evaluation.judge.judge`, the one behind ``ng evaluate``).
"""

from __future__ import annotations

from ng_core.data.constants import (
    BENIGN_CATEGORIES,
    CATEGORIES,
    CATEGORY_WORDS,
    UNSEEN_CATEGORIES,
)
from ng_core.evaluation.judge import judge
from ng_core.evaluation.world_metrics import names_category  # one rule for every judge that names categories

#: The categories with something private on them: the paper's and the unseen ones.
PRIVACY_CATEGORIES = CATEGORIES + UNSEEN_CATEGORIES
BENIGN = BENIGN_CATEGORIES

#: The words that name each category in an answer (the one table :func:`names_category` reads).
KEYWORDS = CATEGORY_WORDS


def is_refusal(answer: str) -> bool:
    """The project's refusal judge (:func:`ng_core.evaluation.judge.judge` with its default keyword sets); an
    empty answer counts as a refusal here, as it always has in the model card (the judge calls it no refusal)."""
    if not answer.strip():
        return True
    return judge(answer).refused
