"""The memory model (ng_core.models.memory): hand-computed bytes for the 7B shapes, the sizes of the caches and
saved activations of tiny models, and the row budgets the batching stages take from the free memory."""
from __future__ import annotations

import pytest
import torch

from ng_core.models import memory
from ng_core.models.memory import GIB, MemoryBudgetError, ModelShape

from helpers import make_records

pytestmark = pytest.mark.usefixtures("one_thread")

# LLaVA-1.5-7B's decoder (Llama-2-7B) and Qwen2.5-VL-7B's (Qwen2-7B: grouped-query attention, 4 key/value heads)
LLAVA_7B = ModelShape(layers=32, hidden=4096, ffn=11008, heads=32, kv_heads=32, head_dim=128, vocab=32064)
QWEN_7B = ModelShape(layers=28, hidden=3584, ffn=18944, heads=28, kv_heads=4, head_dim=128, vocab=152064)


def test_per_token_bytes_by_hand():
    assert LLAVA_7B.kv_token == 2 * 32 * 32 * 128 * 2 == 512 * 1024  # half a MiB per token
    assert QWEN_7B.kv_token == 2 * 28 * 4 * 128 * 2 == 56 * 1024
    # fp16: 3 hidden + 2 q + 3 kv + 4 ffn tensors, and the two norms' fp32 input and output
    assert LLAVA_7B.act_token_layer == 2 * (3 * 4096 + 2 * 4096 + 3 * 4096 + 4 * 11008) + 2 * 2 * 4 * 4096
    assert QWEN_7B.act_token_layer == 2 * (3 * 3584 + 2 * 3584 + 3 * 512 + 4 * 18944) + 2 * 2 * 4 * 3584
    assert LLAVA_7B.fwd_token == 2 * (4 * 4096 + 3 * 11008) + 8 * 4096
    assert LLAVA_7B.logit_token == 32064 * (2 + 8)
    assert LLAVA_7B.attn(24, 640) == 32 * 24 * 4  # sdpa keeps the log-sum-exp only
    assert ModelShape(**{**LLAVA_7B.to_dict(), "eager": True}).attn(24, 640) == 32 * 24 * 640 * 6
    assert LLAVA_7B.delta_state() == 4 * 4 * 4096 * 11008


def test_stage_rows_by_hand():
    kv, act, fwd = 512 * 1024, LLAVA_7B.act_token_layer, LLAVA_7B.fwd_token
    # Stage A, prefix 616 (576 image tokens and the question up to the subject), tail 24, 8 answer tokens,
    # first masked layer 11 (21 layers above), 600 tokens shared by the image's rows
    held = 616 * kv
    step = 21 * 640 * kv // 32 + 24 * 21 * act + 21 * 32 * 24 * 4 + 8 * 32064 * 10 + 24 * 4096 * 2
    build = 600 * kv + 16 * fwd + 32 * 16 * 4
    assert step > build
    assert memory.stage_a_row(LLAVA_7B, 616, 24, 8, 11, 600) == held + step == 656_433_152
    # the reading: 10 images x 7 rows at max_rows=96 hold about 21 GiB of prefix keys/values alone
    assert 70 * held / GIB == pytest.approx(21.05, abs=0.01)
    # Stage C: a 640-token row at layer 11
    assert memory.stage_c_row(LLAVA_7B, 640, 8, 11) == 640 * 4096 * 2 + 640 * 21 * act + 21 * 32 * 640 * 4 \
        + 8 * 32064 * 10
    # ... or a 640-token row whose first 600 tokens the edit's rows share (run once, with ΔW's Adam state)
    assert memory.stage_c_row(LLAVA_7B, 640, 8, 11, 600) == 640 * 4096 * 2 + 40 * 21 * act + 21 * 32 * 40 * 4 \
        + 8 * 32064 * 10 + 21 * 640 * kv // 32
    assert memory.stage_c_shared(LLAVA_7B, 600, 11) == 600 * 21 * act + 21 * 32 * 600 * 4 + 16 * 4096 * 11008
    assert memory.generate_row(QWEN_7B, 300, 32) == 332 * 56 * 1024 + 300 * QWEN_7B.fwd_token + 28 * 300 * 4 \
        + 152064 * 10
    assert memory.score_row(QWEN_7B, 320, 8) == 320 * (2 * 3584 * 2 + QWEN_7B.fwd_token) + 28 * 320 * 4 \
        + 8 * 152064 * 10


def test_rows_that_fit_with_fake_free_memory():
    cpu, g0, g1 = torch.device("cpu"), torch.device("cuda:0"), torch.device("cuda:1")
    mib = 1 << 20
    # no budget (CPU, none given): the stage's own cap, unchanged behaviour
    assert memory.rows_that_fit(100 * mib, {}, {cpu: 1.0}, cap=96) == 96
    assert memory.rows_that_fit(100 * mib, {}, {cpu: 1.0}) is None
    # one card: floor(free * HEADROOM / per_row), never above the cap
    free = {g0: 10 * GIB}
    assert memory.rows_that_fit(100 * mib, free, {g0: 1.0}, cap=96) == int(10 * 1024 * memory.HEADROOM // 100)
    assert memory.rows_that_fit(1 * mib, free, {g0: 1.0}, cap=96) == 96
    assert memory.rows_that_fit(100 * mib, free, {g0: 1.0}, fixed=2 * GIB) == int(
        (10 * 1024 * memory.HEADROOM - 2 * 1024) // 100)
    # layers split 3:1 over two cards: each card holds its share of every row
    shares = {g0: 0.75, g1: 0.25}
    assert memory.rows_that_fit(100 * mib, {g0: 4 * GIB, g1: 4 * GIB}, shares) == int(
        4 * 1024 * memory.HEADROOM // 75)
    # fewer rows than the stage's smallest batch: a clear refusal with the numbers
    with pytest.raises(MemoryBudgetError, match=r"Stage A needs about 0\.68 GiB .*\(7 rows of 100\.0 MiB.* "
                                                r"only 0\.50 GiB is free"):
        memory.rows_that_fit(100 * mib, {g0: GIB // 2}, {g0: 1.0}, minimum=7, stage="Stage A")


def test_a_24_gib_card_runs_stage_a_at_7b_in_chunks():
    """10 images x 7 rows of LLaVA-1.5-7B at max_rows=96 need ~40 GiB at once; a 24 GiB card with the fp16
    weights (~13 GiB) loaded gets chunks of whole images that fit."""
    per_row = memory.stage_a_row(LLAVA_7B, 616, 24, 8, 11, 600)
    assert 70 * per_row / GIB > 40
    g0 = torch.device("cuda:0")
    rows = memory.rows_that_fit(per_row, {g0: int(10.5 * GIB)}, {g0: 1.0}, cap=96, minimum=7)
    assert 7 <= rows < 70 and rows * per_row <= 10.5 * GIB


def test_parse_bytes():
    assert memory.parse_bytes("20GiB") == 20 * GIB
    assert memory.parse_bytes("512 MiB") == 512 << 20
    assert memory.parse_bytes("24GB") == 24 * 10 ** 9
    assert memory.parse_bytes(1234) == 1234
    with pytest.raises(ValueError, match="not a memory size"):
        memory.parse_bytes("lots")


# ------------------------------------------------------------------------------ measured on tiny models
FAMILIES = ("llava", "qwen2_5_vl", "gemma3")


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    from ng_core.models import load_model

    return load_model(f"tiny-random:{request.param}")


def _kv_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for snap in memory_snapshot(cache) for t in snap)


def memory_snapshot(cache):
    from ng_core.models import kv

    return [(k, v) for k, v, _ in kv.snapshot(cache) if isinstance(k, torch.Tensor)]


def test_the_shape_is_read_from_the_config(tiny):
    s = memory.shape_of(tiny)
    t = tiny.text_config
    assert (s.layers, s.hidden, s.ffn, s.vocab) == (tiny.n_layers, tiny.hidden_size, tiny.ffn_size, t.vocab_size)
    assert (s.kv_heads, s.dtype_bytes) == (t.num_key_value_heads, 4)
    assert s.head_dim == (getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads)


def test_a_batchs_key_value_cache_is_rows_times_tokens_times_kv_token(tiny, image_dir):
    f = tiny.encode_image(image_dir / "img0.png")
    seqs = [tiny.build(p, subject="passport") for p in ("What is the number of the passport?",
                                                        "Who owns this passport, and where was it issued?")]
    batch = tiny.collate(seqs, [f, f], padding="left")
    with torch.no_grad():
        _, cache = tiny.forward(batch, use_cache=True)
    rows, tokens = batch.attention_mask.shape
    assert _kv_bytes(cache) == rows * tokens * memory.shape_of(tiny).kv_token


def test_stage_a_prefix_cache_holds_a_copy_per_row_as_modelled(tiny, image_dir):
    """The fast schedule's prefix cache: every row holds its own copy of its image's keys/values."""
    from ng_core.method.locality import LocalityCache
    from ng_core.method.localize import MaskConfig, _prefix_cache, build_stage_a

    recs = make_records(image_dir, n=2)
    cfg = MaskConfig()
    built = [build_stage_a(tiny, r, cfg, LocalityCache(tiny)) for r in recs]
    seqs = [s for ss, _ in built for s in ss]
    row_image = torch.tensor([j for j, (ss, _) in enumerate(built) for _ in ss])
    with torch.no_grad():
        embs = [tiny.embed(s, tiny.encode_image(recs[int(j)].image)) for s, j in zip(seqs, row_image)]
    cache, mask = _prefix_cache(tiny, embs, seqs, row_image, ())
    s = memory.shape_of(tiny)
    assert _kv_bytes(cache) == len(seqs) * mask.shape[1] * s.kv_token
    longest = max(q.subject_pos for q in seqs)
    assert longest <= mask.shape[1]  # two levels of left padding: the image part, then each row's question
    per_row, most = memory.stage_a_bytes(tiny, [ss for ss, _ in built], 1)
    assert most == len(built[0][0]) and per_row >= longest * s.kv_token


def test_saved_activations_are_bounded_by_the_model(tiny, image_dir):
    """What autograd keeps when layers l.. run with gradients: the model is an upper bound within 35%."""
    f = tiny.encode_image(image_dir / "img1.png")
    seqs = [tiny.build("What is the number of the passport?", subject="passport", answer="I cannot say.")] * 3
    batch = tiny.collate(seqs, [f] * 3)
    layer = 1
    h = tiny.hidden_entering(layer, batch).detach().requires_grad_(True)
    params = {p.data_ptr() for p in tiny.model.parameters()}
    saved: dict = {}

    def pack(t):
        if t.data_ptr() not in params:
            saved.setdefault(t.data_ptr(), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        tiny.run_layers(h, layer, batch)
    s = memory.shape_of(tiny)
    rows, tokens = batch.attention_mask.shape
    above = s.layers - layer
    modelled = rows * (tokens * above * s.act_token_layer + above * s.attn(tokens, tokens))
    measured = sum(saved.values())
    assert measured <= modelled <= 1.35 * measured


# ------------------------------------------------------------------------------ the stages under a budget
def test_stage_a_chunks_by_the_budget_and_learns_the_same_masks(tiny, image_dir, monkeypatch):
    from ng_core.method.locality import LocalityCache
    from ng_core.method.localize import MaskConfig, build_stage_a, learn_masks

    recs = make_records(image_dir, n=3)
    cfg = MaskConfig(steps=2, max_rows=96)
    built = [build_stage_a(tiny, r, cfg, LocalityCache(tiny))[0] for r in recs]
    per_row, most = memory.stage_a_bytes(tiny, built, 1)
    unbound, _ = learn_masks(tiny, recs, [1], cfg)
    budget = int(per_row * (most + 1) / memory.HEADROOM) + 1  # one image per chunk
    monkeypatch.setenv(memory.BUDGET_ENV, str(budget))
    assert memory.stage_a_max_rows(tiny, built, 1, cfg.max_rows) == most + 1
    bound, _ = learn_masks(tiny, recs, [1], cfg)
    assert torch.allclose(bound[1], unbound[1], atol=1e-5, rtol=0)
    monkeypatch.setenv(memory.BUDGET_ENV, str(budget // 4))
    with pytest.raises(MemoryBudgetError, match="Stage A"):
        learn_masks(tiny, recs, [1], cfg)


def test_answers_and_scores_split_where_the_budget_binds(tiny, image_dir, monkeypatch):
    from ng_core.evaluation.evaluate import answer_nlls

    f = tiny.encode_image(image_dir / "img2.png")
    items = [(f, q, None) for q in ("What is the number of the passport?", "What colour is it?",
                                    "Who is shown on this passport?")]
    rows = [(image_dir / "img2.png", q, None, "I cannot say.") for _, q, _ in items]
    free = tiny.generate(items, max_new_tokens=4)
    nll = answer_nlls(tiny, rows)
    seqs = [tiny.build(q, has_image=True) for _, q, _ in items]
    per = memory.generate_row(memory.shape_of(tiny), max(len(q) for q in seqs), 4)
    monkeypatch.setenv(memory.BUDGET_ENV, str(int(per * 1.5 / memory.HEADROOM)))  # one row at a time
    assert memory.answer_rows(tiny, seqs, 4) == 1
    assert [g.token_ids for g in tiny.generate(items, max_new_tokens=4)] == [g.token_ids for g in free]
    assert answer_nlls(tiny, rows) == pytest.approx(nll, abs=1e-5)
    monkeypatch.setenv(memory.BUDGET_ENV, "1")
    with pytest.raises(MemoryBudgetError, match="batched answers"):
        tiny.generate(items, max_new_tokens=4)


def test_stage_c_refuses_plainly_when_an_edits_rows_cannot_fit(tiny, image_dir, monkeypatch):
    from ng_core.method.edit import EditConfig, EditItem, gated_finetune

    item = EditItem(image_dir / "img0.png", "What is the number of the passport?", "passport", "I cannot",
                    None, None)
    gate = torch.ones(tiny.hidden_size, dtype=torch.bool)
    monkeypatch.setenv(memory.BUDGET_ENV, "1GiB")
    res = gated_finetune(tiny, [item], 1, gate, EditConfig(steps=1))
    assert res.delta.shape == tiny.down_proj(1).weight.shape
    monkeypatch.setenv(memory.BUDGET_ENV, "1KiB")
    with pytest.raises(MemoryBudgetError, match="Stage C"):
        gated_finetune(tiny, [item], 1, gate, EditConfig(steps=1))
