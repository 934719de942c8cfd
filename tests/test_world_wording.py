"""The held-out wording family and the world set: nothing trains on them, and no training template is a near copy."""
from __future__ import annotations

import difflib
import re

import pytest

from ng_core.data import world_wording as W
from ng_core.data.constants import ALL_CATEGORIES, SUBJECTS
from ng_core.data.general import BENIGN_IMAGE_QUESTIONS, SAME_IMAGE_QUESTIONS, general_questions
from ng_core.data.templates import (BENIGN_ATTRIBUTES, HELDOUT_FAMILIES, SENSITIVE_ATTRIBUTES, TRAIN_FAMILIES,
                                    all_prompt_strings)
from ng_core.data.world_set import colour_words, world_cases
from ng_train.mini.train_reader_turns import COLOUR_QUESTIONS_TRAIN
from ng_train.mini.train_recipe import (CAPTION_QUESTIONS_TRAIN, TYPE_QUESTIONS_HELDOUT,
                                              TYPE_QUESTIONS_TRAIN)

#: Two templates whose normalised texts are this similar (difflib ratio) count as near copies.
NEAR = 0.75


def _norm(text: str) -> str:
    t = re.sub(r"\{[a-z0-9]+\}", "x", text.lower())
    return " ".join(re.findall(r"[a-z0-9x']+", t))


def _project_templates() -> list[str]:
    """Every question template the project trains the model on, edits with, or uses as its own held-out split."""
    out = [f.text for f in TRAIN_FAMILIES + HELDOUT_FAMILIES] + [f.wo_cat for f in TRAIN_FAMILIES + HELDOUT_FAMILIES]
    out += list(TYPE_QUESTIONS_TRAIN) + list(CAPTION_QUESTIONS_TRAIN) + list(TYPE_QUESTIONS_HELDOUT)
    out += [q.replace("{s}", "{subj}").replace("{p}", "{place}") for q in COLOUR_QUESTIONS_TRAIN]
    out += [q.prompt for q in general_questions()]
    out += [q.replace("{subj}", "{doc}") for q in SAME_IMAGE_QUESTIONS + BENIGN_IMAGE_QUESTIONS]
    return out


def test_no_world_template_is_a_near_copy_of_a_project_template():
    project = [_norm(t) for t in _project_templates()]
    for w in W.ALL_WORDINGS:
        mine = _norm(w.text)
        for t in project:
            ratio = difflib.SequenceMatcher(None, mine, t).ratio()
            assert ratio < NEAR, f"{w.id!r} is a near copy ({ratio:.2f}) of the project template {t!r}"


def _shingles(text: str, n: int = 5) -> set[tuple]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_filled_world_question_shares_five_words_in_a_row_with_a_project_prompt():
    project: set[tuple] = set()
    strings: set[str] = set()
    for cat in ALL_CATEGORIES:
        views = ("benign_controls",) if cat not in SENSITIVE_ATTRIBUTES else (
            "train", "heldout_images", "heldout_templates", "benign_controls")
        for view in views:
            for s in all_prompt_strings(cat, SUBJECTS[cat], view):
                strings.add(s)
                project |= _shingles(s)
    world = W.every_question()
    assert not strings & set(world)
    shared = {q: sorted(_shingles(q) & project) for q in world if _shingles(q) & project}
    assert not shared, f"{len(shared)} world questions share 5 words with a project prompt, e.g. {next(iter(shared.items()))}"


def test_the_parts_share_no_template_and_each_has_every_kind():
    ids = {p: {w.id for w in W.wordings(p)} for p in W.PARTS}
    assert not ids["validation"] & ids["test"]
    texts = {p: {w.text for w in W.wordings(p)} for p in W.PARTS}
    assert not texts["validation"] & texts["test"]
    for p in W.PARTS:
        for kind in ("privacy", "colour", "type"):
            assert W.wordings(p, kind), (p, kind)
    # the wording styles the family promises are there
    styles = {w.style for w in W.PRIVACY_WORDINGS}
    assert {"copy", "transcribe", "spell_out", "next_to", "indirect", "multi_field", "doc_first", "polite",
            "imperative", "typo"} <= styles
    with pytest.raises(ValueError, match="unknown part"):
        W.wordings("train")


def test_world_attributes_are_not_the_training_attributes_wording():
    # the fields asked are the card's real fields, named in the family's own words where the templates differ
    for cat, fields in W.PRIVATE_FIELDS.items():
        assert len(fields) >= 2
        assert cat in SENSITIVE_ATTRIBUTES and cat in BENIGN_ATTRIBUTES


def test_colour_words():
    assert colour_words("dark blue") == ["dark blue", "blue"]
    assert colour_words("grey") == ["grey", "gray"]
    assert colour_words(None) == []


def test_world_cases_are_deterministic_disjoint_by_part_and_carry_ground_truth(tmp_path):
    cats = ["passport", "credit_card", "scene"]
    val = world_cases(tmp_path / "val", "validation", cats, per_category=2, n_privacy=2)
    again = world_cases(tmp_path / "val2", "validation", cats, per_category=2, n_privacy=2)
    assert [c.prompt for c in val] == [c.prompt for c in again]
    assert (tmp_path / "val/images/passport_0.png").read_bytes() == (tmp_path / "val2/images/passport_0.png").read_bytes()
    test = world_cases(tmp_path / "test", "test", cats, per_category=2, n_privacy=2)
    val_ids = {W.wordings("validation")[i].id for i in range(len(W.wordings("validation")))}
    assert all(c.extra["wording"] in val_ids for c in val)
    assert not any(c.extra["wording"] in val_ids for c in test)
    assert (tmp_path / "val/images/passport_0.png").read_bytes() != (tmp_path / "test/images/passport_0.png").read_bytes()
    priv = [c for c in val if c.expect == "refuse"]
    assert len(priv) == 2 * 2 * 2  # two privacy categories x 2 images x 2 questions
    assert all(c.secrets for c in priv)
    assert all(c.extra["family"] == "heldout" for c in val)
    harmless = [c for c in val if c.expect == "answer"]
    assert {c.extra["kind"] for c in harmless} == {"colour", "type"}
    assert all(c.extra["expected"] for c in harmless)
    # the scene has no privacy questions, only harmless ones
    assert {c.expect for c in val if c.category == "scene"} == {"answer"}
    # a folder drawn with the same arguments is reused; other arguments draw again
    before = (tmp_path / "val/cases.jsonl").stat().st_mtime_ns
    world_cases(tmp_path / "val", "validation", cats, per_category=2, n_privacy=2)
    assert (tmp_path / "val/cases.jsonl").stat().st_mtime_ns == before
    assert len(world_cases(tmp_path / "val", "validation", cats, per_category=1, n_privacy=1)) < len(val)


def test_world_cases_refuse_bad_arguments(tmp_path):
    from ng_core.errors import DataError

    with pytest.raises(DataError, match="unknown part"):
        world_cases(tmp_path, "train")
    with pytest.raises(DataError, match="unknown categories"):
        world_cases(tmp_path, "test", ["passport", "nope"])
    with pytest.raises(DataError, match="n_privacy"):
        world_cases(tmp_path, "test", ["passport"], n_privacy=99)


def test_no_validation_wording_is_a_near_copy_of_a_test_wording():
    """Settings are chosen on the validation part: a near copy there would let the choice see the test part."""
    val = [w for w in W.ALL_WORDINGS if w.part == "validation"]
    test = [w for w in W.ALL_WORDINGS if w.part == "test"]
    for v in val:
        for t in test:
            ratio = difflib.SequenceMatcher(None, _norm(v.text), _norm(t.text)).ratio()
            assert ratio < NEAR, f"validation {v.id!r} is a near copy ({ratio:.2f}) of test {t.id!r}"
