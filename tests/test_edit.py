"""Stage C: gate scopes leak exactly as documented; schedules agree; base weights never change."""
import pytest
import torch

from ng_core.method.edit import EditConfig, _gate_hook, edit_items, gate_for_method, gated_finetune
from ng_core.models.hooks import HookSpec, scoped_hooks
from ng_core.method.interventions import subject_positions
from ng_core.method.locality import LocalityCache
from ng_core.method.losses import answer_nll

from helpers import make_records, param_hash


def _gate(d, n=10):
    g = torch.zeros(d, dtype=torch.bool)
    g[:n] = True
    return g


@pytest.mark.parametrize("scope", ["weight_rows", "all_positions"])
def test_strict_scopes_change_no_row_outside_the_mask(tiny, image_dir, scope):
    recs = make_records(image_dir, n=2)
    cfg = EditConfig(lr=1e-2, steps=3, gate_scope=scope, questions_per_image=2)
    gate = _gate(tiny.hidden_size)
    res = gated_finetune(tiny, edit_items(recs, cfg, LocalityCache(tiny)), 2, gate, cfg)
    assert torch.count_nonzero(res.delta[~gate]) == 0  # exactly zero, not small
    assert torch.count_nonzero(res.delta[gate]) > 0
    assert res.diagnostics["gate_leak"] == 0.0


def test_subject_position_scope_leaks_through_other_positions(tiny, image_dir):
    recs = make_records(image_dir, n=2)
    cfg = EditConfig(lr=1e-2, steps=2, gate_scope="subject_position", questions_per_image=1)
    gate = _gate(tiny.hidden_size)
    res = gated_finetune(tiny, edit_items(recs, cfg, LocalityCache(tiny)), 2, gate, cfg)
    # the authors' gate only acts at the subject token: other rows still change
    assert torch.count_nonzero(res.delta[~gate]) > 0
    assert 0 < res.diagnostics["gate_leak"] <= 1


def test_subject_position_gradient_outside_mask_is_zero_at_the_subject(tiny, image_dir):
    layer = 2
    gate = _gate(tiny.hidden_size)
    seq = tiny.build("What is the number of the passport?", subject="passport", answer="I cannot")
    batch = tiny.collate([seq], [tiny.encode_image(image_dir / "img0.png")])
    grabbed = {}

    def capture(module, args, kwargs, output):
        h = output.detach().requires_grad_(True)
        h.register_hook(lambda g: grabbed.setdefault("g", g))
        grabbed["h"] = h
        return h

    specs = [HookSpec(tiny.layer_module(layer), capture, "output"),
             _gate_hook(tiny, layer, gate, "subject_position", subject_positions(batch))]
    with scoped_hooks(specs):
        loss = answer_nll(tiny, tiny.forward(batch), batch).sum()
    loss.backward()
    g = grabbed["g"][0]
    s = seq.subject_pos
    assert torch.count_nonzero(g[s, ~gate]) == 0
    assert torch.count_nonzero(g[s, gate]) > 0
    assert torch.count_nonzero(g[s + 1, ~gate]) > 0  # other positions are not gated


@pytest.mark.parametrize("scope,general,same,benign", [
    ("subject_position", 0.0, 0, 0), ("weight_rows", 0.0, 0, 0), ("all_positions", 1.0, 0, 0),
    ("subject_position", 1.0, 0, 0), ("weight_rows", 1.0, 2, 0), ("subject_position", 1.0, 2, 2),
    ("all_positions", 0.0, 0, 2)])
def test_fast_and_naive_edits_agree(tiny64, image_dir, scope, general, same, benign):
    """The fast schedule (cached layers below, the shared prompt start run once per step, text-only rows
    apart) gives the naive schedule's ΔW, losses and gradient diagnostics."""
    recs = make_records(image_dir, n=2)
    base = dict(questions_per_image=2, general_weight=general, general_per_edit=6,  # 24 > the 20 train questions
                same_image_questions=same, benign_image_questions=benign)
    items = edit_items(recs, EditConfig(**base), LocalityCache(tiny64))
    gate = _gate(tiny64.hidden_size, 20)
    out = {}
    for sched in ("fast", "naive"):
        cfg = EditConfig(lr=1e-3, steps=3, gate_scope=scope, schedule=sched, **base)
        out[sched] = gated_finetune(tiny64, items, 1, gate, cfg)
    # float64 model, float64 ΔW. Not bit-equal: the shared prefix's gradient is the rows' sum taken before the
    # decoder's RMSNorm backward, which transformers computes in float32 even in a float64 model; so the two
    # schedules differ at float32 rounding (measured: ~3e-9 on |ΔW| ~1e-2), nothing more
    scale = float(out["naive"].delta.abs().max())
    assert scale > 0 and out["fast"].delta.dtype == torch.float64
    assert torch.allclose(out["fast"].delta, out["naive"].delta, atol=1e-6 * scale, rtol=0)
    assert [r["loss"] for r in out["fast"].losses] == pytest.approx([r["loss"] for r in out["naive"].losses],
                                                                    rel=1e-7)
    for k in ("subject_grad_share", "gate_leak"):
        assert out["fast"].diagnostics[k] == pytest.approx(out["naive"].diagnostics[k], rel=1e-6)
    if general:  # the items mix image rows and text-only general rows: both passes ran
        assert any(im is None for it in items for im, _, _ in it.general)
        assert any(im is not None for it in items for im, _, _ in it.general)


def test_shared_prompt_prefix_stops_before_the_subject_and_skips_other_images(tiny64, image_dir):
    from ng_core.method.edit import shared_prompt_prefix

    a = tiny64.build("What is the number of the passport?", subject="passport", answer="I cannot")
    b = tiny64.build("What is the colour of the passport?", subject="passport", answer="Blue")
    c = tiny64.build("What is 2 + 2?", answer="4", has_image=False)
    rows, P = shared_prompt_prefix([a, b, c], ["img0", "img0", "None"])
    assert rows == [0, 1]
    assert int(a.image_positions[-1]) < P <= a.subject_pos
    assert torch.equal(a.input_ids[:P], b.input_ids[:P]) and not torch.equal(a.input_ids[:P + 1], b.input_ids[:P + 1])
    same = tiny64.build("What is the passport number?", subject="passport", answer="No")
    same2 = tiny64.build("What is the passport holder?", subject="passport", answer="No")
    assert shared_prompt_prefix([same, same2], ["x", "x"])[1] == same.subject_pos  # never past the subject
    assert shared_prompt_prefix([a, c], ["img0", "None"]) == ([], 0)  # nothing to share


def test_same_image_questions_join_the_loss_with_the_unedited_answers(tiny, image_dir):
    """Harmless questions about the edit's own image (what it is, its colour) are rows of the edit's batch whose
    targets are the unedited model's answers, cycled over the pool without repeating within an edit."""
    from ng_core.data.general import SAME_IMAGE_QUESTIONS

    recs = make_records(image_dir, n=2)
    cfg = EditConfig(lr=1e-2, steps=2, gate_scope="weight_rows", questions_per_image=1, same_image_questions=2)
    loc = LocalityCache(tiny)
    items = edit_items(recs, cfg, loc)
    asked = [q for it in items for q, _ in it.harmless]
    assert len(asked) == 4 and len(set(asked)) == 4
    assert asked[1] == SAME_IMAGE_QUESTIONS[1].replace("{subj}", recs[0].subject)
    for it, r in zip(items, recs):
        for q, y in it.harmless:
            assert y == loc.answer(r.image, q, None, cfg.general_words) and y
    res = gated_finetune(tiny, items, 2, _gate(tiny.hidden_size), cfg)
    assert all("harmless_nll" in rec for rec in res.losses)
    plain = EditConfig(lr=1e-2, steps=2, gate_scope="weight_rows", questions_per_image=1)
    res0 = gated_finetune(tiny, edit_items(recs, plain, loc), 2, _gate(tiny.hidden_size), plain)
    assert "harmless_nll" not in res0.losses[0]
    assert res.losses[0]["loss"] > res0.losses[0]["loss"]  # the rows are in the loss, not only logged
    with pytest.raises(Exception, match="same_image_questions"):
        EditConfig(same_image_questions=-1)


def test_benign_image_questions_join_the_loss_with_the_unedited_answers(tiny, image_dir):
    """Harmless questions about benign images drawn for the purpose (charts, landscapes) are rows of each edit's
    batch, with the unedited model's answers as targets; the same config draws the same images and questions,
    the fast and naive schedules agree on them in ``test_fast_and_naive_edits_agree``."""
    from ng_core.data.general import BENIGN_IMAGE_QUESTIONS, benign_image

    recs = make_records(image_dir, n=2)
    cfg = EditConfig(lr=1e-2, steps=2, gate_scope="weight_rows", questions_per_image=1, benign_image_questions=2)
    loc = LocalityCache(tiny)
    items = edit_items(recs, cfg, loc)
    rows = [(im, q, y) for it in items for im, q, y in it.benign]
    assert len(rows) == 4 and all(it.image not in [im for im, _, _ in it.benign] for it in items)
    assert len({q for _, q, _ in rows}) == 4
    subjects = {benign_image(k)[1] for k in range(4)}
    assert subjects == {"chart", "picture"}
    assert {q for _, q, _ in rows} <= {q.replace("{subj}", s) for q in BENIGN_IMAGE_QUESTIONS for s in subjects}
    for im, q, y in rows:
        assert y == loc.answer(im, q, None, cfg.general_words) and y
    again = edit_items(recs, cfg, LocalityCache(tiny))
    assert [(q, y, im.tobytes()) for it in again for im, q, y in it.benign] == \
        [(q, y, im.tobytes()) for im, q, y in rows]
    res = gated_finetune(tiny, items, 2, _gate(tiny.hidden_size), cfg)
    assert all("benign_nll" in rec for rec in res.losses)
    plain = EditConfig(lr=1e-2, steps=2, gate_scope="weight_rows", questions_per_image=1)
    res0 = gated_finetune(tiny, edit_items(recs, plain, loc), 2, _gate(tiny.hidden_size), plain)
    assert "benign_nll" not in res0.losses[0]
    assert res.losses[0]["loss"] > res0.losses[0]["loss"]  # the rows are in the loss, not only logged
    with pytest.raises(Exception, match="benign_image_questions"):
        EditConfig(benign_image_questions=-1)


def test_editing_never_touches_base_weights(tiny, image_dir):
    before = param_hash(tiny.model)
    recs = make_records(image_dir, n=1)
    cfg = EditConfig(lr=1e-2, steps=2, gate_scope="weight_rows")
    gated_finetune(tiny, edit_items(recs, cfg, LocalityCache(tiny)), 2, _gate(tiny.hidden_size), cfg)
    assert param_hash(tiny.model) == before


def test_gate_for_method_sizes():
    sel = _gate(50, 7)
    assert gate_for_method(sel, "neural_gate").tolist() == sel.tolist()
    assert int(gate_for_method(sel, "ft").sum()) == 50
    r = gate_for_method(sel, "random_gate", seed=3)
    assert int(r.sum()) == 7 and not torch.equal(r, sel)
    assert torch.equal(gate_for_method(sel, "random_gate", seed=3), r)  # seeded
    assert torch.equal(gate_for_method(sel, "complement_gate"), ~sel)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="gate_scope"):
        EditConfig(gate_scope="everywhere")
    with pytest.raises(ValueError, match="method"):
        EditConfig(method="rome")


def test_general_locality_term_and_subject_share(tiny, image_dir):
    import torch.nn.functional as F

    from ng_core.models.hooks import scoped_hooks

    recs = make_records(image_dir, n=1)
    cfg = EditConfig(lr=1e-3, steps=2, method="ft", questions_per_image=1, general_weight=1.0, general_per_edit=2)
    items = edit_items(recs, cfg, LocalityCache(tiny))
    assert len(items[0].general) == 2
    assert items[0].general[0][0] is None or items[0].general[0][0] == recs[0].image
    res = gated_finetune(tiny, items, 2, torch.ones(tiny.hidden_size, dtype=torch.bool), cfg)
    assert "general_nll" in res.losses[0]
    share = res.diagnostics["subject_grad_share"]
    assert 0 < share < 1

    # the same share computed independently: gradient of ΔW applied only at the subject positions
    it = items[0]
    seqs = [tiny.build(it.prompt, subject=it.subject, answer=it.target),
            tiny.build(it.neighbour, subject=it.subject, answer=it.neighbour_target)]
    seqs += [tiny.build(q, answer=y, has_image=im is not None) for im, q, y in it.general]
    feats = [tiny.encode_image(it.image)] * 2 + [tiny.encode_image(im) if im is not None else None
                                                 for im, _, _ in it.general]
    w = torch.tensor([1.0, cfg.kl_factor] + [cfg.general_weight / len(it.general)] * len(it.general))
    batch = tiny.collate(seqs, feats)
    spos = torch.tensor([s.subject_pos if s.subject_pos is not None else -1 for s in seqs])

    def grad(only_subject):
        d = torch.zeros(tiny.hidden_size, tiny.ffn_size, requires_grad=True)

        def fn(m, a, kw, out):
            add = F.linear(a[0], d)
            if only_subject:
                sel = torch.zeros(out.shape[:2], dtype=torch.bool)
                for i, s in enumerate(spos.tolist()):
                    if s >= 0:
                        sel[i, s] = True
                add = add * sel[..., None]
            return out + add

        with scoped_hooks([HookSpec(tiny.down_proj(2), fn)]):
            (answer_nll(tiny, tiny.forward(batch), batch) * w).sum().backward()
        return d.grad

    expected = float(grad(True).norm() / grad(False).norm())
    assert share == pytest.approx(expected, rel=1e-4)
