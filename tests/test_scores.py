"""Neuron scores: shapes for heatmaps, the paired Cohen's d, and grad x act against autograd."""
import pytest
import torch

from ng_core.method.localize import MaskConfig
from ng_core.method.score_run import compute_scores
from ng_core.method.scores import ScoreConfig, gradxact_scores, paired_cohens_d

from helpers import make_records


def test_paired_cohens_d_known_values():
    a_s = torch.tensor([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    a_b = torch.tensor([[0.0, 5.0], [0.0, 5.0], [0.0, 5.0]])
    d = paired_cohens_d(a_s, a_b)
    assert d[0] == pytest.approx(2.0 / 1.0)  # mean diff 2, sd 1
    assert d[1] == 0  # no spread, no difference


@pytest.mark.parametrize("method", ["contrast", "mask"])
def test_scores_have_heatmap_shapes(tiny, image_dir, method):
    recs = make_records(image_dir, n=3)
    run = compute_scores(tiny, recs, ScoreConfig(method=method), MaskConfig(steps=3))
    t = run.tensors["scores"]
    L = tiny.n_layers
    assert t[f"{method}/residual"].shape == (L, tiny.hidden_size)
    if method == "contrast":
        assert t["contrast/ffn"].shape == (L, tiny.ffn_size)
        assert torch.isfinite(t["contrast/ffn"]).all()
    else:
        assert t["mask/residual_freq"].min() >= 0 and t["mask/residual_freq"].max() <= 1
    assert run.config["scores"]["method"] == method
    assert len(run.metrics["prompts"]) == 6


def test_gradxact_matches_autograd(tiny, image_dir):
    """captum's attribution equals a hand-computed activation x dJ/dactivation at the subject token."""
    from ng_core.method.locality import LocalityCache
    from ng_core.method.losses import answer_nll
    from ng_core.models.hooks import HookSpec

    rec = make_records(image_dir, n=1)[0]
    cfg = ScoreConfig(method="gradxact", layers=(1,), max_pairs=1)
    out = gradxact_scores(tiny, [rec], cfg)
    loc = LocalityCache(tiny)
    f = tiny.encode_image(rec.image)
    total = 0
    for sign, prompt in ((1, rec.paraphrases[0]), (-1, rec.neighbours[0])):
        seqs = [tiny.build(prompt, subject=rec.subject, answer=rec.target)]
        y = loc.answer(rec.image, prompt, rec.subject, 5)
        if y:
            seqs.append(tiny.build(prompt, subject=rec.subject, answer=y))
        b = tiny.collate(seqs, [f] * len(seqs))
        box = {}

        def grab(m, a, kw, o):
            o = o.detach().requires_grad_(True)
            box["h"] = o
            return o

        with tiny.hooked([HookSpec(tiny.layer_module(1), grab)]):
            nll = answer_nll(tiny, tiny.forward(b), b)
        j = -nll[0] + (nll[1] if len(nll) > 1 else 0)
        (g,) = torch.autograd.grad(j, box["h"])
        s = seqs[0].subject_pos
        total = total + sign * (g[:, s] * box["h"][:, s]).sum(0).detach()
    assert torch.allclose(out["gradxact/residual"][0], total, atol=1e-4, rtol=1e-3)
    assert out["gradxact/ffn"].shape == (1, tiny.ffn_size)


def test_bad_score_requests(tiny, image_dir):
    recs = make_records(image_dir, n=1)
    with pytest.raises(ValueError, match="unknown scoring method"):
        compute_scores(tiny, recs, ScoreConfig(method="ig"))
    with pytest.raises(ValueError, match="at least 2"):
        compute_scores(tiny, recs, ScoreConfig(method="contrast", max_pairs=1))


def test_a_score_method_is_one_record(tiny, image_dir):
    """A score method registered for one test is computed through its record's scorer, and is a choice."""
    from ng_core.method.registry import SCORE, Method, registered

    def ones(adapter, records, cfg, mask_cfg=None, progress=None):
        return {"ones/residual": torch.ones(adapter.n_layers, adapter.hidden_size)}

    recs = make_records(image_dir, n=1)
    with registered(Method("ones", SCORE, "Ones (toy)", "every neuron scores one", score=ones)):
        run = compute_scores(tiny, recs, ScoreConfig(method="ones"))
    assert run.tensors["scores"]["ones/residual"].shape == (tiny.n_layers, tiny.hidden_size)
    assert run.config["mask"] is None  # not a learned mask: no mask settings recorded
    with pytest.raises(ValueError, match="unknown scoring method"):
        compute_scores(tiny, recs, ScoreConfig(method="ones"))
