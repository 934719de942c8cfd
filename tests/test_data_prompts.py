"""Prompt sets: the paper's schema, subjects inside prompts, template families per split, split disjointness."""
from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from ng_core.data import ALL_CATEGORIES, CATEGORIES, SPLITS, SUBJECTS, generate_dataset, load_dataset
from ng_core.data import templates as T
from ng_core.data.constants import BENIGN_CATEGORIES, UNSEEN_CATEGORIES


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = generate_dataset(tmp_path_factory.mktemp("p") / "DATA", seed=3, per_category=4)
    return load_dataset(out)


def _prompts_by_split(ds) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in ds.records():
        out[r.split].add(r.rewrite_text)
        out[r.split].update(r.paraphrases)
        out[r.split].update(r.neighbours)
    for c in ds.cases():
        out[c.split].add(c.prompt)
    return out


def test_no_prompt_string_in_two_splits(ds):
    by_split = _prompts_by_split(ds)
    assert set(by_split) == set(SPLITS)
    owners: dict[str, list[str]] = defaultdict(list)
    for split, prompts in by_split.items():
        assert prompts, split
        for p in prompts:
            owners[p].append(split)
    shared = {p: s for p, s in owners.items() if len(s) > 1}
    assert not shared, list(shared.items())[:5]


def test_template_construction_is_disjoint_for_every_possible_prompt():
    """Not just the sampled prompts: every string each split view can produce is in one view only."""
    views = {
        "train": [(c, "train") for c in CATEGORIES],
        "heldout_images": [(c, "heldout_images") for c in CATEGORIES],
        "heldout_templates": [(c, "heldout_templates") for c in CATEGORIES],
        "unseen_categories": [(c, "unseen_categories") for c in UNSEEN_CATEGORIES],
        "benign_controls": [(c, "benign_controls") for c in BENIGN_CATEGORIES],
    }
    pools = {s: set().union(*(T.all_prompt_strings(c, SUBJECTS[c], v) for c, v in pairs))
             for s, pairs in views.items()}
    names = list(pools)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not (pools[a] & pools[b]), (a, b, sorted(pools[a] & pools[b])[:3])


def test_every_prompt_contains_its_subject_and_rewrites_have_a_slot(ds):
    for r in ds.records():
        assert r.subject == SUBJECTS[r.category]
        assert r.rewrite_prompt.count("{}") == 1
        assert r.subject in r.rewrite_text
        for p in r.paraphrases + r.neighbours:
            assert r.subject in p, (r.category, p)
    for c in ds.cases():
        # exactly once: the engine locates the subject's last token inside the prompt
        assert c.prompt.count(c.subject) == 1, c.prompt
        assert c.expect in ("refuse", "answer")


def test_paper_schema_fields(ds):
    rec = json.loads((ds.root / "neural_gate_passport.json").read_text())[0]
    for key in ("case_id", "image", "requested_rewrite", "paraphrase_prompts", "neighborhood_prompts",
                "generation_prompts", "paraphrase_prompts_wo_cat", "neighborhood_prompts_wo_cat"):
        assert key in rec
    rr = rec["requested_rewrite"]
    assert set(rr) == {"prompt", "target_new", "subject"} and set(rr["target_new"]) == {"str"}
    assert len(rec["paraphrase_prompts"]) == 5 and len(rec["neighborhood_prompts"]) == 5
    assert len(rec["paraphrase_prompts_wo_cat"]) == 5 and len(rec["neighborhood_prompts_wo_cat"]) == 5
    for p in rec["paraphrase_prompts_wo_cat"] + rec["neighborhood_prompts_wo_cat"]:
        assert "passport" not in p.lower()


def test_train_and_heldout_templates_use_different_families(ds):
    fam = lambda split: {c.extra["family"] for c in ds.cases(split)}  # noqa: E731
    train, ht = fam("train"), fam("heldout_templates")
    assert train == {f.id for f in T.TRAIN_FAMILIES}
    assert ht and ht.isdisjoint(train)
    assert fam("heldout_images") <= train  # same families, other place phrases
    after = [c for c in ds.cases("heldout_templates") if c.extra["attr_after_subject"]]
    assert after and all(c.prompt.index(c.subject) < c.prompt.index(c.extra["attribute"]) for c in after)
    for c in ds.cases("train"):  # train prompts put the attribute before the subject
        assert c.extra["attr_after_subject"] is False
        assert c.prompt.index(c.extra["attribute"]) < c.prompt.index(c.subject)


def test_heldout_templates_reuse_train_images(ds):
    train_imgs = {r.image for r in ds.records(split="train")}
    assert {r.image for r in ds.records(split="heldout_templates")} == train_imgs
    assert train_imgs.isdisjoint({r.image for r in ds.records(split="heldout_images")})


def test_expectations_per_split(ds):
    for split in ("train", "heldout_images", "heldout_templates", "unseen_categories"):
        cnt = Counter(c.expect for c in ds.cases(split))
        assert cnt["refuse"] > 0 and cnt["answer"] > 0, split
    assert {c.expect for c in ds.cases("benign_controls")} == {"answer"}
    assert {c.category for c in ds.cases("unseen_categories")} == set(UNSEEN_CATEGORIES)
    assert {c.category for c in ds.cases("benign_controls")} == set(BENIGN_CATEGORIES)
    assert {c.category for c in ds.cases("train")} == set(CATEGORIES)
    for c in ds.cases("train"):  # the sensitive/benign label follows the attribute lists
        attrs = T.SENSITIVE_ATTRIBUTES if c.expect == "refuse" else T.BENIGN_ATTRIBUTES
        assert c.extra["attribute"] in attrs[c.category]


def test_targets_are_short_refusals_varied_per_image(ds):
    targets = [r.target for r in ds.records(split="train")]
    assert len(set(targets)) >= 4
    assert all(0 < len(t.split()) <= 5 for t in targets)
    assert all(r.target == "" for r in ds.records(split="benign_controls"))


def test_sensitive_and_benign_attributes_do_not_overlap():
    for cat in ALL_CATEGORIES:
        assert set(T.SENSITIVE_ATTRIBUTES.get(cat, ())).isdisjoint(T.BENIGN_ATTRIBUTES[cat])
        # no attribute names a subject: its own would put the subject twice in a prompt, another's would
        # blur the categories
        for attr in T.SENSITIVE_ATTRIBUTES.get(cat, ()) + T.BENIGN_ATTRIBUTES[cat]:
            assert not any(SUBJECTS[o] in attr for o in ALL_CATEGORIES), (cat, attr)
