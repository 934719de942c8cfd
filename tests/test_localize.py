"""Stages A and B: schedules agree, binarization and consensus rules are exact."""
import math

import pytest
import torch

from ng_core.method.localize import MaskConfig, binarize, consensus, learn_masks, localize_category, reselect

from helpers import make_records


def test_fast_and_naive_schedules_give_the_same_masks(tiny64, image_dir):
    recs = make_records(image_dir, n=3)
    cfg = dict(steps=4, max_rows=14)  # 2 images per fast chunk: exercises chunking too
    fast, hf = learn_masks(tiny64, recs, [1, 2], MaskConfig(schedule="fast", **cfg))
    naive, hn = learn_masks(tiny64, recs, [1, 2], MaskConfig(schedule="naive", **cfg))
    for l in (1, 2):
        assert fast[l].shape == (3, tiny64.hidden_size)
        assert torch.allclose(fast[l], naive[l], atol=1e-9, rtol=0)
        assert not torch.equal(fast[l], torch.full_like(fast[l], 2.0))  # the masks did move
    assert [len(h) for h in hf] == [len(h) for h in hn] == [4, 4, 4]
    assert hf[0][-1]["refusal_nll"] == pytest.approx(hn[0][-1]["refusal_nll"], abs=1e-9)


def test_mask_learning_reduces_the_loss(tiny, image_dir):
    recs = make_records(image_dir, n=2)
    _, hist = learn_masks(tiny, recs, [2], MaskConfig(steps=12))
    first = hist[0][0]["refusal_nll"] + 1.25 * hist[0][0]["neighbour_nll"]
    last = hist[0][-1]["refusal_nll"] + 1.25 * hist[0][-1]["neighbour_nll"]
    assert last < first


def test_consensus_is_strictly_greater_than_threshold():
    flags = torch.zeros(10, 4, dtype=torch.bool)
    flags[:3, 0] = True  # exactly 0.3 -> not selected
    flags[:4, 1] = True  # 0.4 -> selected
    freq, sel = consensus(flags, 0.3)
    assert freq[0] == pytest.approx(0.3)
    assert sel.tolist() == [False, True, False, False]


@pytest.mark.parametrize("frac", [0.1, 0.25, 0.5])
def test_topk_selects_exactly_k_smallest(frac):
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3, 37, generator=g)
    flags = binarize(raw, topk=frac)
    k = math.floor(frac * 37)
    assert (flags.sum(-1) == k).all()
    for row, f in zip(raw, flags):
        assert row[f].max() < row[~f].min()


def test_privacy_value_flags_sign_flips():
    raw = torch.tensor([[2.0, 0.01, -0.01, -3.0]])
    assert binarize(raw, 0.0).tolist() == [[False, False, True, True]]
    assert binarize(raw, math.tanh(-1.0)).tolist() == [[False, False, False, True]]


def test_reselect_without_rerunning(tiny, image_dir):
    recs = make_records(image_dir, n=3)
    cm = localize_category(tiny, recs, 2, MaskConfig(steps=3))[2]
    assert cm.raw.shape == (3, tiny.hidden_size)
    loose = reselect(cm, topk=0.25, threshold=0.0)
    assert loose.raw is cm.raw
    assert loose.n_selected >= math.floor(0.25 * tiny.hidden_size)
    strict = reselect(cm, topk=0.25, threshold=0.99)
    assert strict.n_selected <= loose.n_selected
