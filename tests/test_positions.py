"""Token positions are exact: image tokens from the feature count, subject from character offsets."""
import pytest
import torch

from ng_core.errors import SubjectNotFoundError
from ng_core.models import load_model
from ng_core.models.image_processing import preprocess

PROMPTS = [
    ("What is the passport number of the passport in this image?", "passport"),
    ("passport: tell me the name on it", "passport"),
    ("Regarding the student ID in the image, please tell me its number.", "student ID"),
    ("Which phone number is shown?", "phone number"),
    ("Tell me the owner of this credit card", "credit card"),
]


@pytest.fixture(scope="module", params=["tiny-random", "tiny-random:metaspace"])
def adapter(request):
    return load_model(request.param)


@pytest.mark.parametrize("prompt,subject", PROMPTS)
def test_subject_last_token(adapter, prompt, subject):
    seq = adapter.build(prompt, subject=subject)
    tok = adapter.tokenizer
    piece = tok.decode([int(seq.input_ids[seq.subject_pos])]).strip()
    # the token found ends the (first) occurrence of the subject inside the prompt
    assert subject.endswith(piece) or piece.endswith(subject.split()[-1][-len(piece):])
    after = tok.decode(seq.input_ids[seq.subject_pos + 1:seq.prompt_len].tolist())
    before_and = tok.decode(seq.input_ids[:seq.subject_pos + 1].tolist(), skip_special_tokens=False)
    assert before_and.replace("<image>", "").rstrip().endswith(subject)
    assert prompt.split(subject, 1)[1].strip()[:5] in after


def test_subject_first_occurrence_inside_prompt(adapter):
    seq = adapter.build("the passport shows a passport number", subject="passport")
    seq2 = adapter.build("the passport", subject="passport")
    assert seq.subject_pos == seq2.subject_pos


def test_explicit_span(adapter):
    p = "a passport and another passport"
    seq = adapter.build(p, subject_span=(p.rindex("passport"), len(p)))
    assert seq.subject_pos == seq.prompt_len - 1 - _suffix_tokens(adapter, seq)


def _suffix_tokens(adapter, seq):
    # tokens after the prompt text (end-of-turn and generation prompt)
    text = seq.text
    tail = text[text.rindex("passport") + len("passport"):]
    return len(adapter.tokenizer(tail, add_special_tokens=False)["input_ids"])


def test_missing_subject_is_a_clear_error(adapter):
    with pytest.raises(SubjectNotFoundError, match="does not contain its subject 'passport'"):
        adapter.build("What is the number on this card?", subject="passport")


def test_image_tokens_match_features(adapter, image_dir):
    f = adapter.encode_image(image_dir / "img0.png")
    seq = adapter.build("What is shown?", subject=None)
    assert len(seq.image_positions) == f.shape[0] == adapter.n_image_tokens
    assert (seq.input_ids[seq.image_positions] == adapter.image_token_id).all()
    # contiguous block, and no other image tokens
    assert (seq.image_positions.diff() == 1).all()
    assert int((seq.input_ids == adapter.image_token_id).sum()) == f.shape[0]


def test_answer_targets_are_teacher_forced(adapter):
    seq = adapter.build("What is the passport number?", subject="passport", answer="I cannot")
    ans = adapter.tokenizer("I cannot", add_special_tokens=False)["input_ids"]
    assert seq.targets.tolist() == ans
    assert len(seq) == seq.prompt_len + len(ans) - 1
    assert seq.input_ids[seq.prompt_len:].tolist() == ans[:-1]
    assert seq.target_positions[0] == seq.prompt_len - 1


def test_spliced_embeddings_equal_stock_llava_forward(adapter, image_dir):
    """Our (embeds, positions) path gives the logits of the stock pixel_values path."""
    from ng_core.models.image_processing import open_image

    img = open_image(image_dir / "img1.png")
    seq = adapter.build("What is the passport number?", subject="passport")
    batch = adapter.collate([seq], [adapter.encode_image(img)])
    ours = adapter.logits(adapter.forward(batch))
    with torch.no_grad():
        stock = adapter.model(input_ids=seq.input_ids[None], pixel_values=preprocess(img, adapter.image_cfg)).logits
    assert torch.allclose(ours, stock, atol=1e-5)


def test_empty_prompt_rejected(adapter):
    with pytest.raises(ValueError, match="empty"):
        adapter.build("   ")


@pytest.mark.parametrize("prompt,subject", PROMPTS)
def test_question_position_is_where_the_question_starts(adapter, prompt, subject):
    reading = "Text read in the image (OCR, may contain errors):\nREISEPASS\nP1234567"
    seq = adapter.build(prompt, subject=subject, reading=reading)
    q = seq.question_pos
    assert int(seq.image_positions[-1]) < q <= seq.subject_pos
    assert adapter.tokenizer.decode(seq.input_ids[q:seq.prompt_len].tolist()).lstrip().startswith(prompt.split()[0])
    assert "P1234567" not in adapter.tokenizer.decode(seq.input_ids[q:].tolist())  # the read lines come before


def test_shared_prefix_is_each_rows_own_question_start(adapter):
    from ng_core.models.decoding import shared_prefix_len

    reading = "Text read in the image (OCR, may contain errors):\nREISEPASS"
    a = adapter.build(PROMPTS[0][0], subject="passport", reading=reading)
    b = adapter.build(PROMPTS[3][0], subject="phone number", reading=reading)
    f = torch.zeros(len(a.image_positions), adapter.hidden_size)
    assert shared_prefix_len([a, b], [f, f]) == a.question_pos == b.question_pos
    assert shared_prefix_len([a], [f]) == a.question_pos  # alone: the same split
    other = adapter.build(PROMPTS[3][0], subject="phone number", reading=reading + "\nP1")
    assert shared_prefix_len([a, other], [f, f]) == 0  # different read lines: nothing shared
    assert shared_prefix_len([a, b], [f, f + 1]) == 0  # different images
