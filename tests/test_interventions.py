"""Gates and deltas act only while scoped, never leave hooks behind, and revert exactly."""
import pytest
import torch

from ng_core.models.hooks import live_hook_count, module_hook_count
from ng_core.method.interventions import Delta, Gate, intervention_hooks, subject_positions

from helpers import param_hash

PROMPT = "What is the number of the passport in this image?"


def _logits(a, feats, gates=(), deltas=()):
    seq = a.build(PROMPT, subject="passport")
    b = a.collate([seq], [feats])
    with torch.no_grad(), a.hooked(intervention_hooks(a, gates, deltas, subject_positions(b))):
        return a.logits(a.forward(b))[0], seq


def test_subject_gate_changes_only_positions_from_the_subject_on(tiny, image_dir):
    f = tiny.encode_image(image_dir / "img0.png")
    base, seq = _logits(tiny, f)
    gated, _ = _logits(tiny, f, [Gate(1, torch.arange(tiny.hidden_size), 0.0, "subject")])
    s = seq.subject_pos
    assert torch.equal(base[:s], gated[:s])
    assert not torch.allclose(base[s:], gated[s:])


def test_unit_gate_is_identity_and_ffn_gate_acts(tiny, image_dir):
    f = tiny.encode_image(image_dir / "img1.png")
    base, _ = _logits(tiny, f)
    same, _ = _logits(tiny, f, [Gate(2, torch.arange(10), 1.0, "all")])
    assert torch.equal(base, same)
    ffn, _ = _logits(tiny, f, [Gate(2, torch.arange(tiny.ffn_size), 0.0, "all", unit="ffn")])
    assert not torch.allclose(base, ffn)


def test_delta_equals_editing_the_weight(tiny64, image_dir):
    f = tiny64.encode_image(image_dir / "img0.png")
    g = torch.Generator().manual_seed(0)
    dw = torch.randn(tiny64.hidden_size, tiny64.ffn_size, generator=g, dtype=torch.float64) * 0.1
    hooked, _ = _logits(tiny64, f, deltas=[Delta(1, dw)])
    W = tiny64.down_proj(1).weight
    orig = W.detach().clone()
    try:
        with torch.no_grad():
            W.add_(dw)
        edited, _ = _logits(tiny64, f)
    finally:
        with torch.no_grad():
            W.copy_(orig)
    assert torch.allclose(hooked, edited, atol=1e-10)


def test_revert_is_bit_exact_and_hooks_are_gone(tiny, image_dir):
    before = param_hash(tiny.model)
    n0, m0 = live_hook_count(), module_hook_count(tiny.model)
    f = tiny.encode_image(image_dir / "img2.png")
    base = tiny.generate([(f, PROMPT, "passport")], max_new_tokens=6)[0].token_ids
    d = Delta(2, torch.randn(tiny.hidden_size, tiny.ffn_size))
    gates = [Gate(1, torch.arange(20), 0.0, "all")]
    edited = tiny.generate([(f, PROMPT, "passport")], max_new_tokens=6,
                           hooks_for=lambda b: intervention_hooks(tiny, gates, [d], subject_positions(b)))[0]
    assert edited.token_ids != base
    after = tiny.generate([(f, PROMPT, "passport")], max_new_tokens=6)[0].token_ids
    assert after == base
    assert param_hash(tiny.model) == before
    assert (live_hook_count(), module_hook_count(tiny.model)) == (n0, m0)


def test_hooks_are_removed_when_generation_raises(tiny, image_dir):
    n0, m0 = live_hook_count(), module_hook_count(tiny.model)
    f = tiny.encode_image(image_dir / "img0.png")
    d = Delta(2, torch.zeros(tiny.hidden_size, tiny.ffn_size))
    gates = [Gate(1, torch.arange(5), 0.5, "subject"), Gate(2, torch.arange(5), 0.0, "subject", unit="ffn")]
    seen = {}

    def boom(texts):
        seen["live"] = live_hook_count()
        raise RuntimeError("stream consumer went away")

    with pytest.raises(RuntimeError, match="went away"):
        tiny.generate([(f, PROMPT, "passport")], max_new_tokens=4, on_token=boom,
                      hooks_for=lambda b: intervention_hooks(tiny, gates, [d], subject_positions(b)))
    assert seen["live"] == n0 + 4  # 2 gates (+1 position capture for the FFN gate) + 1 delta were live
    assert live_hook_count() == n0
    assert module_hook_count(tiny.model) == m0
    assert tiny.lock.acquire(blocking=False)  # the model lock was released too
    tiny.lock.release()


def test_batched_generation_equals_one_by_one(tiny, image_dir):
    items = [(tiny.encode_image(image_dir / f"img{i}.png"), p, None)
             for i, p in enumerate(["What colour is the passport?", "Tell me the name on the student ID card",
                                    "hi"])]
    items.append((None, "What is the capital of France?", None))
    batched = [g.token_ids for g in tiny.generate(items, max_new_tokens=8)]
    single = [tiny.generate([it], max_new_tokens=8)[0].token_ids for it in items]
    assert batched == single


def test_gate_validation():
    with pytest.raises(ValueError, match="position"):
        Gate(0, [1], 0.0, "middle")
    with pytest.raises(ValueError, match="unit"):
        Gate(0, [1], 0.0, "all", unit="head")
    g = Gate(3, [1, 2], torch.tensor([0.1, 0.2]), "all", label="passport mask")
    assert "layer 3" in g.describe() and "learned" in g.describe()


def test_per_row_deltas_share_a_pass_only_when_the_rows_carry_equal_edits(tiny, image_dir):
    """A prompt start run once for several rows may stand for rows whose edits came out equal (two edits that
    changed nothing alike), never for rows under different edits."""
    from ng_core.method.interventions import Delta, row_delta_hooks

    f = tiny.encode_image(image_dir / "img0.png")
    seq = tiny.build("What colour is the passport?")
    b = tiny.collate([seq], [f])
    dw = torch.randn(tiny.hidden_size, tiny.ffn_size) * 0.1
    same = [[Delta(1, dw)], [Delta(1, dw.clone())]]
    with torch.no_grad(), tiny.hooked(row_delta_hooks(tiny, same)):
        shared = tiny.forward(b)
    with torch.no_grad(), tiny.hooked(row_delta_hooks(tiny, [[Delta(1, dw)]])):
        assert torch.equal(shared, tiny.forward(b))
    with pytest.raises(ValueError, match="RowTags"), torch.no_grad(), \
            tiny.hooked(row_delta_hooks(tiny, [[Delta(1, dw)], [Delta(1, dw * 2)]])):
        tiny.forward(b)
    with pytest.raises(ValueError, match="RowTags"), torch.no_grad(), \
            tiny.hooked(row_delta_hooks(tiny, [[Delta(1, dw)], []])):
        tiny.forward(b)
