"""Greedy decoding with a draft (the previous answer) gives the model's own greedy answer, in fewer passes."""
import torch

from ng_core.models.hooks import live_hook_count
from ng_core.studio import StudioSession
from ng_core.method.interventions import Gate, intervention_hooks, subject_positions

PROMPTS = ["What is the number of the passport in this image?", "Tell me the name on the student ID card"]


def _hooks(a, gates):
    if not gates:
        return None
    return lambda batch: intervention_hooks(a, gates, [], subject_positions(batch))


def _count_passes(a):
    box = {"n": 0}

    def hook(module, args, kwargs):
        box["n"] += 1

    h = a.lm.register_forward_pre_hook(hook, with_kwargs=True)
    return box, h


def test_draft_never_changes_the_greedy_answer(tiny64, image_dir):
    a = tiny64
    d = a.hidden_size
    gate_sets = [[], [Gate(1, torch.arange(0, d, 3), 0.0, "all")], [Gate(2, torch.arange(d // 2), 0.3, "subject")]]
    checked = 0
    for i, prompt in enumerate(PROMPTS):
        subject = "passport" if "passport" in prompt else "student ID card"
        item = (a.encode_image(image_dir / f"img{i}.png"), prompt, subject)
        answers = [a.generate([item], max_new_tokens=14, hooks_for=_hooks(a, g))[0].token_ids for g in gate_sets]
        for g, ref in zip(gate_sets, answers):
            assert len(ref) > 4
            wrong_mid = ref[:5] + [(ref[5] + 1) % 200 if len(ref) > 5 else 3] + ref[6:]
            drafts = [ref, ref[:4], wrong_mid, [], list(range(7, 40)), ref + [5, 6, 7]] + answers
            for dr in drafts:
                got = a.generate([item], max_new_tokens=14, hooks_for=_hooks(a, g), draft=dr)[0].token_ids
                assert got == ref, (g, dr)
                checked += 1
            assert live_hook_count() == 0
    assert checked == 2 * 3 * 9


def test_a_right_draft_takes_two_passes_instead_of_one_per_token(tiny, image_dir):
    a = tiny
    item = (a.encode_image(image_dir / "img0.png"), PROMPTS[0], "passport")
    ref = a.generate([item], max_new_tokens=12)[0]
    assert len(ref.token_ids) >= 6
    box, h = _count_passes(a)
    try:
        again = a.generate([item], max_new_tokens=12, draft=ref.token_ids)[0]
        with_draft = box["n"]
        box["n"] = 0
        a.generate([item], max_new_tokens=12)
        plain = box["n"]
    finally:
        h.remove()
    assert again.token_ids == ref.token_ids and again.text == ref.text
    assert with_draft <= 4 < plain  # shared image prefix + prompt tail + one verify pass (+ the final token)


def test_streaming_with_a_draft_ends_with_the_answer(tiny, image_dir):
    a = tiny
    item = (a.encode_image(image_dir / "img1.png"), PROMPTS[1], None)
    ref = a.generate([item], max_new_tokens=10)[0]
    seen = []
    got = a.generate([item], max_new_tokens=10, draft=ref.token_ids[:6], on_token=lambda t: seen.append(t[0]))[0]
    assert got.token_ids == ref.token_ids
    assert seen and seen[-1].strip() == ref.text


def test_session_answers_after_a_gate_toggle_equal_fresh_answers(tiny, image_dir, tmp_path):
    """The session drafts each answer from the previous one for the same input; answers stay exact."""
    s = StudioSession(tiny, runs_dir=tmp_path / "runs", max_new_tokens=10)
    s.set_image(image_dir / "img2.png", private=False)
    s.set_prompt(PROMPTS[0])
    d = tiny.hidden_size
    texts = []
    for k in (0, 4, 8, 12):
        s.set_gates([Gate(1, torch.arange(k), 0.0, "all")] if k else [])
        texts.append(s.ask(memo=False).text)
    fresh = StudioSession(tiny, runs_dir=tmp_path / "runs2", max_new_tokens=10)
    fresh.set_image(image_dir / "img2.png", private=False)
    fresh.set_prompt(PROMPTS[0])
    for k, text in zip((0, 4, 8, 12), texts):
        fresh.set_gates([Gate(1, torch.arange(k), 0.0, "all")] if k else [])
        fresh.shared.drafts.clear()  # no draft: plain decoding
        assert fresh.ask(memo=False).text == text
    assert d > 12



def test_gate_toggles_reuse_the_prompt_start_and_answer_exactly(tiny64, image_dir, tmp_path):
    """Between toggles of subject-token gates the image block's keys/values are reused (nothing before the
    subject can change); gates at every position and edits are part of the key, so they never reuse a
    prefix computed without them. Answers equal those of a session that reuses nothing, in float64."""
    from ng_core.method.interventions import Delta

    a = tiny64
    d = a.hidden_size
    s = StudioSession(a, runs_dir=tmp_path / "r1", max_new_tokens=10)
    ref = StudioSession(a, runs_dir=tmp_path / "r2", max_new_tokens=10)
    ref.shared.prefix_memo.size = 0  # keeps nothing
    for sess in (s, ref):
        sess.set_image(image_dir / "img1.png", private=False)
        sess.set_prompt(PROMPTS[0], "passport")

    def both(gates=None, deltas=None):
        for sess in (s, ref):
            if gates is not None:
                sess.set_gates(gates)
            if deltas is not None:
                sess.apply_edit(deltas)
        ref.shared.drafts.clear()
        assert s.ask(memo=False).text == ref.ask(memo=False).text

    for k in (4, 8, 16):
        both([Gate(1, torch.arange(k), 0.0, "subject")])
    assert (s.shared.prefix_memo.misses, s.shared.prefix_memo.hits) == (1, 2)  # one prefix run, reused twice
    both([Gate(1, torch.arange(8), 0.0, "all")])  # acts inside the prefix: not the subject gates' entry
    assert s.shared.prefix_memo.misses == 2
    both([Gate(1, torch.arange(8), 0.5, "subject")])  # back to subject gates: the first entry again
    assert (s.shared.prefix_memo.misses, s.shared.prefix_memo.hits) == (2, 3)
    g = torch.Generator().manual_seed(0)
    both(deltas=[Delta(1, torch.randn(d, a.ffn_size, generator=g, dtype=torch.float64) * 0.5)])
    assert s.shared.prefix_memo.misses == 3  # an edit changes the prefix: never the unedited entry
    assert ref.shared.prefix_memo.hits == 0


def test_prefix_memo_answers_equal_plain_generation(tiny64, image_dir):
    from ng_core.models.decoding import PrefixMemo

    a = tiny64
    memo = PrefixMemo(2)
    item = (a.encode_image(image_dir / "img0.png"), PROMPTS[0], "passport")
    for k in (0, 5, 10):
        gates = [Gate(2, torch.arange(k), 0.0, "subject")] if k else []
        got = a.generate([item], max_new_tokens=12, hooks_for=_hooks(a, gates), prefix_memo=memo, prefix_tag="t")
        want = a.generate([item], max_new_tokens=12, hooks_for=_hooks(a, gates))
        assert got[0].token_ids == want[0].token_ids
    assert (memo.misses, memo.hits) == (1, 2)
    two = a.generate([item, (item[0], PROMPTS[1], "student ID card")], max_new_tokens=8, prefix_memo=memo,
                     prefix_tag="t")  # the prefix expanded over two rows from a stored entry
    assert [x.token_ids for x in two] == [x.token_ids for x in a.generate([item, (item[0], PROMPTS[1],
                                                                           "student ID card")], max_new_tokens=8)]


def test_gates_at_every_position_rerun_the_prompt_start_only_from_their_layer(tiny64, image_dir, tmp_path):
    """A gate at every position of layer l cannot change what enters layers 0..l: a new such gate reuses the
    stored prompt start below l and reruns layers l.. (issue 31: every-position toggles). Answers equal a
    session that reuses nothing, in float64, and the stored layers are never those of another input."""
    from ng_core.method.interventions import Delta

    a = tiny64
    d = a.hidden_size
    s = StudioSession(a, runs_dir=tmp_path / "r1", max_new_tokens=10)
    ref = StudioSession(a, runs_dir=tmp_path / "r2", max_new_tokens=10)
    ref.shared.prefix_memo.size = 0  # keeps nothing
    for sess in (s, ref):
        sess.set_image(image_dir / "img1.png", private=False)
        sess.set_prompt(PROMPTS[0], "passport")
    ran = []
    h = a.lm.layers[0].register_forward_pre_hook(lambda m, args, kw: ran.append(args[0].shape[1] if args else
                                                                              kw["hidden_states"].shape[1]),
                                                 with_kwargs=True)

    def both(gates=None, deltas=None):
        for sess in (s, ref):
            if gates is not None:
                sess.set_gates(gates)
            if deltas is not None:
                sess.apply_edit(deltas)
        ref.shared.drafts.clear()
        ran.clear()
        got = s.ask(memo=False).text
        first = list(ran)
        assert got == ref.ask(memo=False).text
        return first

    try:
        seq = a.build(PROMPTS[0], subject="passport", has_image=True, reading=s.reading)
        P = max(int(seq.image_positions[-1]) + 1, int(seq.question_pos))
        assert both([])[0] == P  # the plain prompt start, run and stored with its layer inputs
        assert (s.shared.prefix_memo.misses, s.shared.prefix_memo.partial) == (1, 0)
        for k, scale in ((8, 0.0), (8, 0.5), (16, 0.0)):  # new gate sets at every position of layer 2
            both([Gate(2, torch.arange(k), scale, "all")])
        assert s.shared.prefix_memo.partial == 3 and s.shared.prefix_memo.hits == 0
        first = both([Gate(1, torch.arange(8), 0.0, "all"), Gate(3, torch.arange(4), 0.0, "all")])
        assert s.shared.prefix_memo.partial == 4
        assert first[0] == len(seq.input_ids) - P  # layer 0 first saw the question, not the prompt start again
        both([Gate(1, torch.arange(8), 0.0, "all"), Gate(3, torch.arange(4), 0.0, "all")])  # stored: reused whole
        assert s.shared.prefix_memo.hits == 1
        g = torch.Generator().manual_seed(0)
        both(deltas=[Delta(2, torch.randn(d, a.ffn_size, generator=g, dtype=torch.float64) * 0.5)])
        both([Gate(3, torch.arange(8), 0.0, "all")])  # edit and gate together: from the edited prompt start
        s.set_image(image_dir / "img2.png", private=False)  # another input: nothing of the first one
        ref.set_image(image_dir / "img2.png", private=False)
        partial = s.shared.prefix_memo.partial
        both([Gate(2, torch.arange(8), 0.0, "all")])
        assert s.shared.prefix_memo.partial == partial
        assert ref.shared.prefix_memo.hits == ref.shared.prefix_memo.partial == 0
    finally:
        h.remove()
