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
        fresh._drafts.clear()  # no draft: plain decoding
        assert fresh.ask(memo=False).text == text
    assert d > 12
