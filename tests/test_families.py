"""The same test matrix on every family's tiny random build (``tiny-random:<model_type>``).

Each family must: give the logits of the model's own forward (input ids and pixels, the model computing its
positions itself) through the adapter's spliced-embedding path; reproduce them when the layers are replayed
from any layer; answer greedily as the model's own ``generate`` does; learn the same masks and ΔW with the
fast and the naive schedules; leave every position before a subject gate bit-identical; give the same logits
for a ΔW applied by hook and the same ΔW added to the weight; refuse another family's run bundle; and run
``ng ask/localize/edit/evaluate`` end to end.
"""
from __future__ import annotations

import json

import pytest
import torch

from ng_core.models.tiny_families import TINY_FAMILIES

from helpers import make_records

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT = "What is the passport number of the passport in this image?"


def _load(fam, double=False):
    from ng_core.models import load_model

    a = load_model(f"tiny-random:{fam}")
    if double:
        a.model.double()
    return a


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def fam(request):
    return _load(request.param)


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def fam64(request):
    return _load(request.param, double=True)


def _stock_inputs(a, seq, image):
    """The model's own inputs for ``seq``: ids, pixels and geometry, token types where the family uses them."""
    kw = {"input_ids": seq.input_ids[None]}
    if image is not None:
        kw.update(a.pixel_inputs(image))
        if a.spec.positions == "mrope":
            kw["mm_token_type_ids"] = (seq.input_ids[None] == a.image_token_id).int()
        if a.spec.token_types:
            kw[a.spec.token_types] = (seq.input_ids[None] == a.image_token_id).long()
    return kw


def test_family_is_named_and_image_tokens_come_from_the_expanded_ids(fam, image_dir):
    assert fam.family == fam.model.config.model_type
    f = fam.encode_image(image_dir / "img0.png")
    seq = fam.build(PROMPT, subject="the passport")
    assert f.shape[0] == fam.n_image_tokens == len(seq.image_positions)
    assert torch.equal(seq.image_positions, (seq.input_ids == fam.image_token_id).nonzero()[:, 0])
    assert fam.tokenizer.decode(seq.input_ids[seq.subject_pos]).strip() == "passport"
    assert seq.subject_pos > int(seq.image_positions[-1])


@pytest.mark.parametrize("has_image", [True, False])
def test_spliced_forward_equals_the_models_own_forward(fam, image_dir, has_image):
    from ng_core.models.image_processing import open_image

    img = open_image(image_dir / "img1.png") if has_image else None
    seq = fam.build(PROMPT, subject="the passport", has_image=has_image)
    batch = fam.collate([seq], [fam.encode_image(img) if has_image else None])
    with torch.no_grad():
        ours = fam.logits(fam.forward(batch))
        stock = fam.model(**_stock_inputs(fam, seq, img)).logits
    assert torch.allclose(ours, stock, atol=1e-5), float((ours - stock).abs().max())


def test_typed_placeholders_and_markers_never_become_image_or_control_tokens(fam):
    typed = " ".join([fam.image_token] + [t for t in fam.spec.image_wrap + fam.spec.image_rows if t])
    seq = fam.build(f"What is {typed} in the passport?", subject="the passport")
    assert len(seq.image_positions) == fam.n_image_tokens  # only the template's own image
    question = seq.input_ids[seq.question_pos:].tolist()
    assert fam.image_token_id not in question and not set(fam.marker_ids) & set(question)


def test_replaying_the_layers_from_any_layer_reproduces_forward(fam, image_dir):
    from ng_core.models.hooks import module_hook_count

    f = fam.encode_image(image_dir / "img2.png")
    seqs = [fam.build(PROMPT, subject="the passport", answer="I cannot"), fam.build("What is it?", has_image=False)]
    with torch.no_grad():  # transformers adds a few hooks of its own at a model's first forward: count after it
        fam.forward(fam.collate(seqs, [f, None]))
    layers, hooks = list(fam.layers), module_hook_count(fam.model)
    for padding in ("left", "right"):
        batch = fam.collate(seqs, [f, None], padding=padding)
        with torch.no_grad():
            full = fam.logits(fam.forward(batch))
            for layer in range(fam.n_layers):
                replay = fam.logits(fam.run_layers(fam.hidden_entering(layer, batch), layer, batch))
                assert torch.allclose(replay, full, atol=1e-5), (padding, layer)
    assert all(x is y for x, y in zip(fam.layers, layers)) and module_hook_count(fam.model) == hooks


def test_places_resolve_to_the_real_layers_while_a_capture_runs(fam, image_dir):
    """A capture of the layers' arguments (inside :meth:`run_layers`, under the lock) briefly puts stand-ins in the
    model's layer list; another thread resolving a place meanwhile (an edit reading its ``down_proj``, a gate
    naming its layer) must still get the real modules, not a stand-in."""
    from ng_core.models import kv

    seen = []

    def run(cache):  # what another thread would see in the middle of the capture
        seen.append((fam.layer_module(0), fam.down_proj(fam.n_layers - 1), fam.layers))
        return fam._decode(fam.embed(seq, None)[None], batch, cache, False)

    seq = fam.build("What is it?", has_image=False)
    batch = fam.collate([seq], [None])
    kv.captured_layer_kwargs(fam.lm, fam.spec.layers_attr, run, None, 0, fam.text_config, 1)
    real = getattr(fam.lm, fam.spec.layers_attr)
    assert seen and seen[0][0] is real[0] and seen[0][1] is fam.down_proj(fam.n_layers - 1) and seen[0][2] is real
    assert type(seen[0][1]) is torch.nn.Linear


def test_greedy_answers_are_the_models_own(fam, image_dir):
    from ng_core.models.image_processing import open_image

    img = open_image(image_dir / "img3.png")
    f = fam.encode_image(img)
    ours = fam.generate([(f, PROMPT, "the passport")], max_new_tokens=6)[0].token_ids
    seq = fam.build(PROMPT, subject="the passport")
    with torch.no_grad():
        out = fam.model.generate(**_stock_inputs(fam, seq, img), max_new_tokens=len(ours) or 1, do_sample=False,
                                 suppress_tokens=[fam.image_token_id] + fam.marker_ids,
                                 eos_token_id=sorted(fam.eos_ids), pad_token_id=fam.pad_id)
    assert out[0, len(seq):].tolist()[:len(ours)] == ours
    # rows about one image share its prefix's keys/values: the same answers as one by one
    items = [(f, PROMPT, "the passport"), (f, "What colour is the passport?", "the passport")]
    together = [g.token_ids for g in fam.generate(items, max_new_tokens=5)]
    assert together == [fam.generate([it], max_new_tokens=5)[0].token_ids for it in items]


def test_fast_and_naive_schedules_give_the_same_masks(fam64, image_dir):
    from ng_core.method.localize import MaskConfig, learn_masks

    recs = make_records(image_dir, n=3)
    cfg = dict(steps=3, max_rows=14)
    fast, hf = learn_masks(fam64, recs, [1, 2], MaskConfig(schedule="fast", **cfg))
    naive, hn = learn_masks(fam64, recs, [1, 2], MaskConfig(schedule="naive", **cfg))
    for layer in (1, 2):
        assert torch.allclose(fast[layer], naive[layer], atol=1e-9, rtol=0)
        assert not torch.equal(fast[layer], torch.full_like(fast[layer], 2.0))
    assert hf[0][-1]["refusal_nll"] == pytest.approx(hn[0][-1]["refusal_nll"], abs=1e-9)


@pytest.mark.parametrize("scope,general", [("subject_position", 1.0), ("weight_rows", 0.0)])
def test_fast_and_naive_edits_agree(fam64, image_dir, scope, general):
    from ng_core.method.edit import EditConfig, edit_items, gated_finetune
    from ng_core.method.locality import LocalityCache

    recs = make_records(image_dir, n=2)
    base = dict(questions_per_image=2, general_weight=general, general_per_edit=6)
    items = edit_items(recs, EditConfig(**base), LocalityCache(fam64))
    gate = torch.zeros(fam64.hidden_size, dtype=torch.bool)
    gate[torch.randperm(fam64.hidden_size, generator=torch.Generator().manual_seed(0))[:20]] = True
    out = {s: gated_finetune(fam64, items, 1, gate, EditConfig(lr=1e-3, steps=3, gate_scope=scope, schedule=s, **base))
           for s in ("fast", "naive")}
    # float64 models, but transformers' RMSNorms compute in float32 (Gemma 3 has four per layer plus q/k norms):
    # the schedules, which sum the shared prefix's gradient at different points, agree to float32 rounding
    scale = float(out["naive"].delta.abs().max())
    assert scale > 0
    assert torch.allclose(out["fast"].delta, out["naive"].delta, atol=1e-5 * scale, rtol=0)
    assert [r["loss"] for r in out["fast"].losses] == pytest.approx([r["loss"] for r in out["naive"].losses], rel=1e-7)


def _logits(a, feats, gates=(), deltas=()):
    from ng_core.method.interventions import intervention_hooks, subject_positions

    seq = a.build(PROMPT, subject="the passport")
    b = a.collate([seq], [feats])
    with torch.no_grad(), a.hooked(intervention_hooks(a, gates, deltas, subject_positions(b))):
        return a.logits(a.forward(b))[0], seq


def test_a_subject_gate_leaves_every_earlier_position_bit_identical(fam, image_dir):
    from ng_core.method.interventions import Gate

    f = fam.encode_image(image_dir / "img0.png")
    base, seq = _logits(fam, f)
    gated, _ = _logits(fam, f, [Gate(1, torch.arange(fam.hidden_size), 0.0, "subject")])
    s = seq.subject_pos
    assert torch.equal(base[:s], gated[:s])
    assert not torch.allclose(base[s:], gated[s:])


def test_rows_about_several_images_run_each_images_prompt_start_once(fam, image_dir):
    """A batch over two images with a subject gate and a ΔW: each image's prompt start runs once (stored in the
    memo, then reused whole), and every row answers as it does alone."""
    from ng_core.method.interventions import Delta, Gate, intervention_hooks, subject_positions
    from ng_core.models.decoding import LayeredTag, PrefixMemo

    f0, f1 = (fam.encode_image(image_dir / f"img{i}.png") for i in (0, 2))
    dw = torch.randn(fam.hidden_size, fam.ffn_size, generator=torch.Generator().manual_seed(1)) * 0.05
    gates, deltas = [Gate(0, torch.arange(8), 0.0, "subject")], [Delta(1, dw)]

    def hooks(batch):
        return intervention_hooks(fam, gates, deltas, subject_positions(batch))

    items = [(f0, PROMPT, "the passport"), (f1, "Tell me the name on the student ID card", "the student ID card"),
             (f0, "What colour is the passport?", "the passport"), (f1, "What is this card?", None)]
    memo, tag = PrefixMemo(4), LayeredTag([(1, "edit")])
    together = [g.token_ids for g in fam.generate(items, max_new_tokens=5, hooks_for=hooks, prefix_memo=memo,
                                                  prefix_tag=tag)]
    alone = [fam.generate([it], max_new_tokens=5, hooks_for=hooks)[0].token_ids for it in items]
    assert together == alone
    if torch.equal(f0, f1):  # this tiny build sees both images alike: one start shared by every row, as before
        return
    assert (memo.misses, memo.hits) == (2, 0)
    again = [g.token_ids for g in fam.generate(items[::-1], max_new_tokens=5, hooks_for=hooks, prefix_memo=memo,
                                               prefix_tag=tag)]
    assert again == alone[::-1] and memo.hits == 2


def test_a_delta_by_hook_equals_the_delta_added_to_the_weight(fam64, image_dir):
    from ng_core.method.interventions import Delta

    f = fam64.encode_image(image_dir / "img0.png")
    dw = torch.randn(fam64.hidden_size, fam64.ffn_size, generator=torch.Generator().manual_seed(0),
                     dtype=torch.float64) * 0.1
    hooked, _ = _logits(fam64, f, deltas=[Delta(1, dw)])
    W = fam64.down_proj(1).weight
    orig = W.detach().clone()
    try:
        with torch.no_grad():
            W.add_(dw)
        edited, _ = _logits(fam64, f)
    finally:
        with torch.no_grad():
            W.copy_(orig)
    assert torch.allclose(hooked, edited, atol=1e-10)


def test_a_padded_batch_longer_than_the_sliding_window_is_refused(fam, image_dir):
    if fam.sliding_window is None:
        assert fam.family not in ("gemma3", "mistral3")  # Gemma 3's sliding layers; every layer of Mistral's
        return
    seqs = [fam.build(PROMPT, subject="the passport"), fam.build("What is it?", has_image=False)]
    batch = fam.collate(seqs, [fam.encode_image(image_dir / "img0.png"), None], padding="left")
    tc = fam.text_config
    window = tc.sliding_window
    tc.sliding_window = len(seqs[1]) + 1
    try:
        with pytest.raises(ValueError, match="sliding attention window"):
            fam.forward(batch)
        fam.forward(fam.collate(seqs[1:], [None]))  # one row, no padding: fine
    finally:
        tc.sliding_window = window


def test_a_run_bundle_refuses_another_familys_weights(fam, tmp_path):
    from ng_core.errors import BundleError
    from ng_core.method.bundle import Run

    r = Run.new("edit", fam, {"layer": 1}, {"seed": 0})
    r.tensors["deltas"]["L1"] = torch.zeros(fam.hidden_size, fam.ffn_size)
    r.save(tmp_path / "run")
    assert Run.load(tmp_path / "run", fam).kind == "edit"
    other = _load(next(f for f in TINY_FAMILIES if f != fam.family))
    with pytest.raises(BundleError, match="made for model"):
        Run.load(tmp_path / "run", other)


def test_a_checkpoint_folder_is_loaded_as_its_family(fam, tmp_path, image_dir):
    """``--model PATH``: the family comes from config.json; the same weights give the same logits, and the
    folder's fingerprint is stable from load to load."""
    from ng_core.models import load_model
    from ng_core.models.tiny_families import save_tiny_family

    folder = save_tiny_family(tmp_path / "ckpt", fam.family)
    b = load_model(str(folder))
    assert b.family == fam.family and b.family_info()["family_name"] == fam.spec.name
    assert b.fingerprint() == load_model(str(folder)).fingerprint()
    assert b.n_image_tokens == fam.n_image_tokens and b.image_cfg.crop == fam.image_cfg.crop
    s1, s2 = (x.build(PROMPT, subject="the passport") for x in (fam, b))
    assert torch.equal(s1.input_ids, s2.input_ids) and s1.subject_pos == s2.subject_pos
    img = image_dir / "img0.png"
    with torch.no_grad():
        la = fam.logits(fam.forward(fam.collate([s1], [fam.encode_image(img)])))
        lb = b.logits(b.forward(b.collate([s2], [b.encode_image(img)])))
    assert torch.allclose(la, lb, atol=1e-6)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ng_core.data import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("famdata") / "data", seed=0, per_category=3,
                            categories=["passport"])


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_cli_ask_localize_edit_evaluate(family, data, tmp_path, capsys):
    from ng_core.cli.main import main
    from ng_core.data import load_dataset, write_cases_jsonl

    model = f"tiny-random:{family}"
    run = tmp_path / "run"
    img = next((data / "images" / "passport").glob("*.png"))
    assert main(["ask", "--model", model, "--image", str(img), "--prompt", "What is the passport number?",
                 "--json", "--max-new-tokens", "3"]) == 0
    assert "answer" in json.loads(capsys.readouterr().out)
    assert main(["localize", "--model", model, "--data", str(data), "--category", "passport", "--layer", "2",
                 "--mask-steps", "2", "--max-images", "2", "--out", str(run)]) == 0
    assert "passport L2:" in capsys.readouterr().out
    assert main(["edit", "--model", model, "--data", str(data), "--category", "passport", "--layer", "2",
                 "--lr", "0.01", "--edit-steps", "2", "--questions", "1", "--max-images", "2",
                 "--out", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["kind"] == "edit"
    cf = write_cases_jsonl(load_dataset(data).cases("heldout_images")[:3], tmp_path / "cases" / "cases.jsonl")
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", model, "--cases", str(cf), "--max-new-tokens", "3", "--method", "edited",
                 "--run", str(run), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 3 and res["method"] != "unedited" and res["run"]


def test_a_layer_without_a_dense_down_proj_is_named_with_the_editable_ones():
    from torch import nn

    a = _load("qwen2_vl")
    mlp = a.layer_module(2).mlp
    mlp.down_proj = nn.Sequential(mlp.down_proj)  # as a wrapper (adapter, experts) would hold it
    with pytest.raises(ValueError, match=r"layer 2 cannot be edited.*Sequential.*editable layers: \[0, 1, 3\]"):
        a.down_proj(2)
    assert a.down_proj(1).in_features == a.ffn_size


def test_unknown_families_and_tiny_builds_are_named():
    from ng_core.errors import ModelLoadError
    from ng_core.models import load_model

    with pytest.raises(ModelLoadError, match="tiny-random:<model_type>.*qwen2_vl"):
        load_model("tiny-random:mllama")


def test_llava_next_sequences_equal_the_official_processors():
    """Where the family's own processor can be built offline here (LLaVA-NeXT; the others need a video processor
    or torchvision), it expands the image placeholder exactly as the adapter does."""
    import transformers
    from PIL import Image

    a = _load("llava_next")
    proc = transformers.LlavaNextProcessor(image_processor=a.image_processor, tokenizer=a.tokenizer, patch_size=14,
                                           vision_feature_select_strategy="default", image_token="<image>",
                                           num_additional_image_tokens=1)  # CLIP's class token, as llava-hf ships
    seq = a.build(PROMPT, subject="the passport")
    out = proc(images=[Image.new("RGB", (a.image_cfg.crop,) * 2)], text=[seq.text], return_tensors="pt")
    assert out["input_ids"][0].tolist() == seq.input_ids.tolist()


def test_a_list_content_template_gets_the_image_markup_the_familys_processor_writes(fam, image_dir):
    """Real checkpoints' chat templates take ``{"type": "image"}`` items and write a short placeholder (Gemma 3:
    ``<start_of_image>``, InternVL: ``<IMG_CONTEXT>``, SmolVLM: ``<image>``, Qwen: its whole vision block); the
    adapter writes the family's markup there, as the family's processor does, and the model's own forward agrees."""
    from ng_core.models.hf_adapter import HFVLMAdapter
    from ng_core.models.image_processing import open_image

    spec = fam.spec
    written = spec.template_image[0] if spec.template_image else spec.image_wrap[0] + fam.image_token + spec.image_wrap[1]
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}" + written + "{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    b = HFVLMAdapter(fam.model, fam.tokenizer, fam.image_cfg, "list-template", chat_template=template,
                     image_processor=fam.image_processor)
    seq = b.build(PROMPT, subject="the passport")
    assert len(seq.image_positions) == fam.n_image_tokens and set(fam.marker_ids) <= set(seq.input_ids.tolist())
    img = open_image(image_dir / "img1.png")
    with torch.no_grad():
        ours = b.logits(b.forward(b.collate([seq], [b.encode_image(img)])))
        stock = fam.model(**_stock_inputs(b, seq, img)).logits
    assert torch.allclose(ours, stock, atol=1e-5)


def test_rows_under_different_edits_answer_in_one_batch_as_each_alone(fam, image_dir, monkeypatch):
    """Unedited rows, rows under one ΔW and rows under another, about two images, in one batch (per-row ΔW hooks,
    one prefix tag per row): each row answers as it does alone under its own edit; prompt starts are shared only
    within an edit (an edit's start reuses the unedited one below its layer); split in parts, the same."""
    import ng_core.models.generation as generation
    from ng_core.method.interventions import Delta, delta_hooks, row_delta_hooks
    from ng_core.models.decoding import LayeredTag, PrefixMemo, RowTags

    f0, f1 = (fam.encode_image(image_dir / f"img{i}.png") for i in (0, 2))
    g = torch.Generator().manual_seed(3)
    d1, d2 = ([Delta(1, torch.randn(fam.hidden_size, fam.ffn_size, generator=g) * 0.3)] for _ in range(2))
    items = [(f0, PROMPT, "the passport"), (f1, "What colour is the passport?", "the passport")]
    rows, row_deltas = items * 3, [[]] * 2 + [d1] * 2 + [d2] * 2
    tags = RowTags([LayeredTag()] * 2 + [LayeredTag([(1, "d1")])] * 2 + [LayeredTag([(1, "d2")])] * 2)

    def hooks(batch):
        return row_delta_hooks(fam, [row_deltas[i] for i in batch.rows])

    alone = [fam.generate([it], max_new_tokens=5, hooks_for=(lambda b, d=d: delta_hooks(fam, d)) if d else None)[0]
             .token_ids for it, d in zip(rows, row_deltas)]
    memo = PrefixMemo(8)
    together = [x.token_ids for x in fam.generate(rows, max_new_tokens=5, hooks_for=hooks, prefix_memo=memo,
                                                  prefix_tag=tags)]
    assert together == alone
    plain = [x.token_ids for x in fam.generate(rows, max_new_tokens=5, hooks_for=hooks, prefix_tag=tags)]  # no memo
    assert plain == alone
    if not torch.equal(f0, f1):
        assert (memo.misses, memo.partial) == (6, 4)
    monkeypatch.setattr(generation, "answer_rows", lambda *a, **k: 4)  # memory allows 4 rows: two parts
    parts = [x.token_ids for x in fam.generate(rows, max_new_tokens=5, hooks_for=hooks, prefix_memo=PrefixMemo(8),
                                               prefix_tag=tags)]
    assert parts == alone


def test_a_sliding_window_that_could_bind_keeps_rows_whole(tiny, image_dir, monkeypatch):
    """Padding between a short start and its question takes cache slots: where a window could bind, every row
    runs its whole prompt (nothing grouped, nothing stored), with the same answers."""
    import ng_core.models.generation as generation
    from ng_core.models.decoding import LayeredTag, PrefixMemo
    from ng_core.models.prefix_groups import padded_length, prefix_groups

    items = [(tiny.encode_image(image_dir / f"img{i}.png"), PROMPT, "the passport") for i in (0, 1)]
    seqs = [tiny.build(p, subject=s) for _, p, s in items]
    groups = prefix_groups(seqs, [f for f, _, _ in items])
    assert [rows for _, rows in groups] == [[0], [1]]
    assert padded_length(seqs, groups, 4) == max(len(s) for s in seqs) + 4
    free, bound = PrefixMemo(4), PrefixMemo(4)
    grouped = [g.token_ids for g in tiny.generate(items, max_new_tokens=4, prefix_memo=free, prefix_tag=LayeredTag())]
    monkeypatch.setattr(generation, "cache_window", lambda a: padded_length(seqs, groups, 4))
    whole = [g.token_ids for g in tiny.generate(items, max_new_tokens=4, prefix_memo=bound, prefix_tag=LayeredTag())]
    assert free.misses == 2 and bound.misses == 0 and grouped == whole
