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
