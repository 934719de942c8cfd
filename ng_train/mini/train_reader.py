"""Teach ``ng-mini-llava`` to use what it reads: LoRA on SmolLM2 plus the projector, on synthetic document QA.

Why: with OCR lines in its prompt, the 135M LM still paraphrases or invents instead of copying a field
("It's a passport with the nationality: ESP."). Extraction needs training. The recipe:

- images from the project's generator (main rendering family only; the held-out family is for validation),
  read by the same OCR the model uses (:mod:`ng_core.models.reading`), cached on disk;
- turns: privacy questions answered with the TRUE field values from the generator's ground truth (only
  values the OCR actually read), type questions, appearance questions (colours measured on the pixels),
  benign questions, captions, and general questions distilled from the LM's own text-only answers, with and
  without an image, so that its general ability stays;
- ``peft`` LoRA on every linear layer of the LM, trained together with the projector (vision tower frozen);
  loss on answer tokens only.

The result is small (LoRA factors in bf16 + the 2.2 MB projector) and is merged into the weights when the
model is assembled (:mod:`ng_core.models.mini.reader_lora`), so the model stays a plain
``LlavaForConditionalGeneration``. One command: ``python -m ng_train.mini.train_reader`` (CPU), or with
``--device cuda``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from ng_core.data.constants import ALL_CATEGORIES
from ng_core.data.images import derive_seed, render_sample
from ng_core.data.templates import SENSITIVE_ATTRIBUTES
from ng_core.models.llava import LlavaAdapter
from ng_core.models.mini import assemble as ML
from ng_core.models.mini import reader_lora as MR
from ng_core.models.reading import block_lines
from ng_core.storage.code_revision import code_revision
from ng_train.mini.reader_variants import (
    SEED_NAMESPACE,
    changed_look,
    sideways,
    swapped_image,
    thinned_reading,
)
from ng_train.mini.train_reader_turns import reader_turn
from ng_train.mini.train_recipe import GENERAL_QUESTIONS_TRAIN, image_stats, log_line
from ng_train.mini.train_steps import (
    answer_loss,
    general_answer_targets,
    lr_at,
    vision_features,
)


@dataclass
class ReaderTrainConfig:
    seed: int = 0
    n_per_category: int = 64  # images of the main family per category
    steps: int = 360
    batch_size: int = 8
    lr: float = 3e-4  # LoRA
    projector_lr: float = 1e-4
    warmup_steps: int = 12
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    # turn mixture (probabilities)
    mix: dict = field(default_factory=lambda: {
        "privacy": 0.36, "type": 0.14, "appearance": 0.16, "benign": 0.08, "caption": 0.04,
        "general": 0.14, "general_text": 0.08})
    general_answer_tokens: int = 24
    autocast_bf16: bool = True
    threads: int = 2
    device: str = "cpu"
    log_every: int = 10
    #: draw the training cards with wording variants (titles left off, label synonyms; render_sample(variants=)).
    #: Tried once (docs/experiments/reader-wording-variants): better type naming, fewer leaks; not shipped. The
    #: shipped reader trains with them; more were added later (docs/experiments/reader-type-variants).
    wording_variants: bool = False
    #: share of the privacy turns asked about an attribute whose value the card shows (and the OCR read); the rest
    #: pick any attribute, so "does not show" answers stay taught. None: every attribute equally likely (shipped
    #: v1 and the variants experiment), which makes about 40% of privacy turns "does not show" answers.
    answerable_share: float | None = None
    #: a reader folder (LoRA + projector, as shipped) to start from instead of fresh LoRA factors; its
    #: reader.json is kept in the new one, so the chain of commands that made a reader is on record.
    init_from: str | None = None
    #: share of the "colour" turns (card colour asked, see ``mix``) drawn from cards that are not white, so
    #: that "mostly white" is not the answer that minimises the loss (half the main family's cards are white)
    colour_non_white_share: float = 0.7
    #: share of the training documents printed on coloured paper (render_sample(tint_share=)), so that a card's
    #: colour varies independently of its category and layout; 0 (the shipped reader) draws the plain family
    tint_share: float = 0.0
    #: end every reading block with the colour behind the text, measured on the pixels (ReadingConfig.colour);
    #: the reader is then trained, and shipped, with that line (its reader.json records the reading config)
    colour_line: bool = False
    #: share of the type turns whose image features come from a card of another category, while the reading stays
    #: this card's: the type must then be told from the words read. Why: on cards drawn outside the generator the
    #: type answer followed the look of the generator's cards, not the title the OCR read (MODEL_CARD.md).
    #: Only cards with text lines are swapped, and only with images of another category.
    type_swap_share: float = 0.0
    #: the categories that take part in the swap, as turns and as the looks swapped in (None: all of them). A chart's
    #: numbers or a vehicle's plate do not name their category, so those must be told by their look.
    type_swap_categories: list | None = None
    #: share of the type turns that see only some of the card's text lines, in a shuffled order (each line kept
    #: with probability ``type_thin_keep``, at least one). Why: held-out cards are worded and laid out otherwise
    #: (a card number with "EXPIRES END" and no bank name), and a type answer keyed to one title or label has
    #: nothing to go on there, so the look decides; with lines left out, every line read must carry the type.
    #: Tried once at 0.5 (docs/experiments/reader-type-variants, run 3): credit cards no better, forms worse; not shipped.
    type_thin_share: float = 0.0
    type_thin_keep: float = 0.5
    #: share of the training documents photographed sideways (the whole photo turned 90 degrees either way, then
    #: read by the OCR as it is), so that a tall image is not only a phone screen. Why: held-out credit cards are
    #: tall; shown with their own reading they are named 13 of 30 times, with a main-family card's look 30 of 30,
    #: turned on their side 20 of 30 (``bench/type_answers.py --look``). Scenes, charts and vehicles never turn
    #: (their sky is at the top, which appearance answers measure). Tried once at 0.3 (docs/experiments/
    #: reader-type-variants, run 4): held-out credit cards 30%, turned ones no better either; not shipped.
    sideways_share: float = 0.0
    #: share of the type turns (cards with text lines, in ``type_swap_categories``, not swapped) whose look is a
    #: changed copy of the card itself: hue turned, colours inverted, grey, cropped, blurred, turned a quarter, or
    #: a blank page (one change per image, seeded; ``changed_look``), while the reading stays the card's. Why:
    #: the type answer rests on the look (held-out credit cards: 13 of 30 named with their own look, 30 of 30 with
    #: a main-family card's, ``bench/type_answers.py --look``); a look the model has not seen should send it to
    #: the words read, and a swap only ever shows it looks it knows. Tried once at 0.4 (docs/experiments/
    #: reader-type-variants, run 5): credit cards 20%, forms 47%; not shipped.
    type_look_share: float = 0.0


def train_seed(category: str, index: int) -> int:
    return derive_seed(SEED_NAMESPACE, "train", category, index)


# ------------------------------------------------------------------------------------------ data
def read_training_images(adapter, cfg: ReaderTrainConfig, cache_file: Path, log=log_line):
    """Render the training images, read them with the model's OCR (cached on disk), compute vision features."""
    cache = {}
    if cache_file.is_file():
        cache = json.loads(cache_file.read_text())
    key_prefix = f"r{adapter.reading.format_version}{'c' if adapter.reading.colour else ''}:"
    items, images = [], []
    t0 = time.perf_counter()
    new = 0
    for c in ALL_CATEGORIES:
        for i in range(cfg.n_per_category):
            seed = train_seed(c, i)
            s = render_sample(c, seed, "main", variants=cfg.wording_variants, tint_share=cfg.tint_share)
            image = sideways(s.image, c, i, cfg.sideways_share)
            key = key_prefix + adapter.content_key(image)  # by pixels: a changed drawing is read again
            if key not in cache:
                cache[key] = adapter.read_image_uncached(image)
                new += 1
                if new % 50 == 0:
                    cache_file.write_text(json.dumps(cache))
                    log(f"OCR {new} new images ({time.perf_counter() - t0:.0f}s)")
            items.append({"category": c, "seed": seed, "truth": s.truth, "reading": cache[key],
                          "stats": image_stats(image), "sideways": image is not s.image})
            images.append(image)
    cache_file.write_text(json.dumps(cache))
    t_ocr = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats = vision_features(adapter, images, MR.vision_feature_layer(adapter))
    turned = sum(1 for it in items if it["sideways"])
    log(f"{len(items)} images ({turned} sideways): render + OCR {t_ocr:.0f}s ({new} read now), vision features {time.perf_counter() - t1:.0f}s")
    return items, feats.to(torch.float32), images


# ------------------------------------------------------------------------------------------ training
def load_start(peft_model, proj, cfg: ReaderTrainConfig) -> dict:
    """Load the LoRA factors and projector of the reader in ``cfg.init_from``; what was loaded, for the record."""
    start = MR.shipped_reader(Path(cfg.init_from))
    if start is None:
        raise FileNotFoundError(f"init_from: {cfg.init_from} holds no reader ({MR.META_FILE.name} missing)")
    lora = start["meta"].get("lora", {})
    if (int(lora.get("r", -1)), lora.get("target_modules")) != (cfg.lora_r, MR.LORA_TARGET_REGEX):
        raise ValueError(f"init_from: {cfg.init_from} has LoRA r={lora.get('r')} on {lora.get('target_modules')}, "
                         f"this run r={cfg.lora_r} on {MR.LORA_TARGET_REGEX}")
    MR.load_factors(peft_model, proj, Path(start["folder"]))
    return {"folder": start["folder"], "sha256": start["sha256"], "reader": start["meta"]}


def train(cfg: ReaderTrainConfig, out_dir: Path, cache_dir=None, log=log_line) -> dict:
    """Train the reader (LoRA factors and projector) from the base model; write it to ``out_dir``; its record."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from peft import LoraConfig, get_peft_model  # deferred: peft imports transformers (after HF_HUB_OFFLINE is set)

    unknown = set(cfg.type_swap_categories or ()) - set(ALL_CATEGORIES)
    if unknown:  # checked before the model loads
        raise ValueError(f"type_swap_categories: unknown {sorted(unknown)}; known: {', '.join(ALL_CATEGORIES)}")
    torch.set_num_threads(cfg.threads)
    if cfg.device != "cpu" and not torch.cuda.is_available():
        raise RuntimeError(f"device {cfg.device!r} asked for, but torch {torch.__version__} sees no CUDA device")
    t_start = time.perf_counter()
    timings = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = ML.cache_root(cache_dir) / "reader-training"
    work.mkdir(parents=True, exist_ok=True)

    log("loading the base model (shipped projector, no reader)")
    folder = ML.ensure_assembled(cache_dir, with_reader=False)
    reading_cfg = dataclasses.replace(MR.READING, colour=bool(cfg.colour_line))
    adapter = LlavaAdapter.from_folder(folder, model_id=ML.MODEL_ID, reading=reading_cfg,
                                       device_map=None if cfg.device == "cpu" else {"": cfg.device})
    timings["load_s"] = time.perf_counter() - t_start

    t = time.perf_counter()
    items, feats, look_changes = _training_data(adapter, cfg, work, log)
    timings["data_s"] = time.perf_counter() - t

    # general questions: the unedited LM's own text-only answers are the targets (before any LoRA)
    t = time.perf_counter()
    general_targets = general_answer_targets(adapter, GENERAL_QUESTIONS_TRAIN, cfg.general_answer_tokens)
    timings["general_targets_s"] = time.perf_counter() - t

    # LoRA on every linear layer of the LM; the projector trains too
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                      target_modules=MR.LORA_TARGET_REGEX)
    peft_model = get_peft_model(adapter.model, lcfg)
    proj = adapter.model.model.multi_modal_projector
    start = load_start(peft_model, proj, cfg) if cfg.init_from else None
    for p in proj.parameters():
        p.requires_grad_(True)
    lora_params = [p for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" in n]
    n_lora = sum(p.numel() for p in lora_params)
    log(f"LoRA r={cfg.lora_r} on {MR.LORA_TARGET_REGEX}: {n_lora / 1e6:.2f}M trainable + projector "
        f"{sum(p.numel() for p in proj.parameters()) / 1e6:.2f}M")

    curve, running, counts = _run_steps(adapter, peft_model, lora_params, items, feats, general_targets, cfg,
                                        timings, log)
    _save_reader(out_dir, peft_model, proj)
    timings["total_s"] = time.perf_counter() - t_start
    meta = {
        "what": "LoRA factors for SmolLM2 (merged at assembly) and the projector trained with them",
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "target_modules": MR.LORA_TARGET_REGEX,
                 "dtype": "bfloat16", "parameters": n_lora},
        "reading": dataclasses.asdict(reading_cfg),
        "config": dataclasses.asdict(cfg),
        "command": "python -m ng_train.mini.train_reader " + shlex.join(sys.argv[1:]),
        "device": cfg.device, "threads": cfg.threads,
        "turns": counts,
        "sideways_images": sum(1 for it in items if it["sideways"]),
        "look_changes": look_changes,
        "started_from": start,
        "loss": {"first": curve[0], "last_avg": round(running, 4)},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "sha256": {MR.LORA_FILE.name: ML.sha256_file(out_dir / MR.LORA_FILE.name),
                   MR.PROJECTOR_FILE.name: ML.sha256_file(out_dir / MR.PROJECTOR_FILE.name)},
        "versions": {"torch": torch.__version__, "peft": ML.installed_version("peft"),
                     "transformers": ML.installed_version("transformers")},
        "code": code_revision(),  # the generator drawing the training images is part of the recipe
    }
    (out_dir / MR.META_FILE.name).write_text(json.dumps(meta, indent=2) + "\n")
    (out_dir / "training_log.json").write_text(json.dumps({"loss": curve}) + "\n")
    log(f"saved to {out_dir} in {timings['total_s'] / 60:.1f} min")
    return meta


def _training_data(adapter, cfg: ReaderTrainConfig, work: Path, log=log_line) -> tuple[list, torch.Tensor, dict]:
    """The training cards (read, on the model's device) and their features; with ``type_look_share`` the changed
    looks' features follow the cards' own (row ``k + len(items)``), and how often each change was drawn."""
    items, feats, images = read_training_images(adapter, cfg, work / "ocr_cache.json", log)
    look_changes = {}
    if cfg.type_look_share:  # the changed looks' features follow the cards' own: row k + len(items)
        changed = [changed_look(im, it["category"], i % cfg.n_per_category)
                   for i, (im, it) in enumerate(zip(images, items))]
        for _, ch in changed:
            look_changes[ch] = look_changes.get(ch, 0) + 1
        feats = torch.cat([feats, vision_features(adapter, [im for im, _ in changed],
                                                  MR.vision_feature_layer(adapter)).to(torch.float32)])
        log(f"changed looks: {look_changes}")
    del images
    return items, feats.to(adapter.input_device), look_changes


def _run_steps(adapter, peft_model, lora_params: list, items: list, feats, general_targets: dict,
                cfg: ReaderTrainConfig, timings: dict, log=log_line) -> tuple[list, float, dict]:
    """The training loop (AdamW, warm-up and cosine decay, loss on answer tokens); the loss curve, its moving
    average at the end, and how many turns of each kind were drawn."""
    proj = adapter.model.model.multi_modal_projector
    opt = torch.optim.AdamW([{"params": lora_params, "lr": cfg.lr, "base": cfg.lr},
                             {"params": list(proj.parameters()), "lr": cfg.projector_lr, "base": cfg.projector_lr}],
                            weight_decay=0.0)
    rng = random.Random(cfg.seed)
    pools = _turn_pools(items, cfg)
    curve, running, counts = [], None, {}
    t_train = time.perf_counter()
    peft_model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, group["base"], cfg.warmup_steps, cfg.min_lr_ratio)
        seqs, fs = _draw_batch(adapter, rng, items, pools, general_targets, cfg, counts)
        img_rows = [j for j in fs if j is not None]
        projected = iter(proj(feats[torch.tensor(img_rows)]) if img_rows else [])
        fl = [next(projected) if j is not None else None for j in fs]
        with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.autocast_bf16):
            loss, _ = answer_loss(adapter, seqs, fl, None)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_params + list(proj.parameters()), cfg.grad_clip)
        opt.step()
        lv = float(loss.detach())
        running = lv if running is None else 0.95 * running + 0.05 * lv
        curve.append(round(lv, 4))
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            el = time.perf_counter() - t_train
            log(f"step {step + 1}/{cfg.steps} loss {lv:.3f} (avg {running:.3f}) {el / (step + 1):.2f}s/step, "
                f"eta {el / (step + 1) * (cfg.steps - step - 1) / 60:.1f} min")
    timings["train_s"] = time.perf_counter() - t_train
    peft_model.eval()
    return curve, running, counts


def _turn_pools(items: list, cfg: ReaderTrainConfig) -> dict:
    """The cards each kind of turn draws from: with a measured colour, not white, and, for a swapped look, the
    cards of the other categories that take part in the swap."""
    coloured = [k for k, it in enumerate(items) if (it["truth"].get("colours") or {}).get("card")]
    non_white = [k for k in coloured if items[k]["truth"]["colours"]["card"] != "white"]
    if cfg.mix.get("colour") and not coloured:
        raise ValueError("mix asks for colour turns, but no training card has a measured colour")
    swap_cats = set(cfg.type_swap_categories or ALL_CATEGORIES)
    by_category_not = {c: [k for k, it in enumerate(items) if it["category"] != c and it["category"] in swap_cats]
                       for c in ALL_CATEGORIES if c in swap_cats}
    return {"coloured": coloured, "non_white": non_white, "swap_cats": swap_cats, "by_category_not": by_category_not}


def _draw_batch(adapter, rng: random.Random, items: list, pools: dict, general_targets: dict,
                cfg: ReaderTrainConfig, counts: dict) -> tuple[list, list]:
    """One batch: the sequences and, for each, the feature row of the image it sees (None: text only)."""
    kinds = list(cfg.mix)
    weights = [cfg.mix[k] for k in kinds]
    seqs, fs = [], []
    for _ in range(cfg.batch_size):
        k = rng.randrange(len(items))
        kind = rng.choices(kinds, weights)[0]  # drawn in this order, a recipe without colour turns is as before
        if kind == "colour":
            pool = pools["non_white"] if pools["non_white"] and rng.random() < cfg.colour_non_white_share \
                else pools["coloured"]
            k = rng.choice(pool)
        it = items[k]
        cat, reading = it["category"], it["reading"]
        if kind == "privacy" and not SENSITIVE_ATTRIBUTES.get(cat):
            kind = "appearance"
        counts[kind] = counts.get(kind, 0) + 1
        if kind in ("general", "general_text"):
            q = rng.choice(GENERAL_QUESTIONS_TRAIN)
            text_only = kind == "general_text"
            seqs.append(_sequence(adapter, q, None if text_only else reading, answer_ids=general_targets[q],
                                  has_image=not text_only))
            fs.append(None if text_only else k)
            continue
        q, a = reader_turn(kind, it, rng, cfg.answerable_share)
        shown = thinned_reading(kind, reading, rng, cfg.type_thin_share, cfg.type_thin_keep)
        if shown is not reading:
            counts["type_thinned"] = counts.get("type_thinned", 0) + 1
        seqs.append(_sequence(adapter, q, shown, answer=a))
        swap = swapped_image(kind, cat, reading, rng, cfg.type_swap_share, pools["by_category_not"])
        if swap is not None:  # another category's look, this card's words
            k = swap
            counts["type_swapped"] = counts.get("type_swapped", 0) + 1
        elif (cfg.type_look_share and kind == "type" and cat in pools["swap_cats"] and block_lines(reading)
              and rng.random() < cfg.type_look_share):  # a changed look of this card, its words
            k += len(items)
            counts["type_look_changed"] = counts.get("type_look_changed", 0) + 1
        fs.append(k)
    return seqs, fs


def _sequence(adapter, q: str, reading, answer: str | None = None, answer_ids=None, has_image: bool = True):
    """A training sequence: the answer as text (ended by ``<|im_end|>``) or as the token ids to learn."""
    if answer_ids is not None:
        s = adapter.build(q, has_image=has_image, reading=reading)
        ids = torch.tensor(answer_ids, dtype=torch.long)
        s.input_ids = torch.cat([s.input_ids, ids[:-1]])
        s.targets = ids
        return s
    return adapter.build(q, answer=answer + ML.IM_END_TOKEN, has_image=has_image, reading=reading)


def _save_reader(out_dir: Path, peft_model, proj) -> None:
    """The LoRA factors (bf16) and the projector (fp32), as assembly reads them."""
    from peft import get_peft_model_state_dict  # deferred: peft imports transformers (after HF_HUB_OFFLINE is set)

    lora_state = {k: v.detach().to("cpu", torch.bfloat16).contiguous()
                  for k, v in get_peft_model_state_dict(peft_model).items()}
    proj_state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in proj.state_dict().items()}
    save_file(lora_state, str(out_dir / MR.LORA_FILE.name))
    save_file(proj_state, str(out_dir / MR.PROJECTOR_FILE.name))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ng_train.mini.train_reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(MR.READER_DIR), help="output folder (default: the shipped assets folder)")
    p.add_argument("--cache-dir", default=None, help="model cache (default $NG_CACHE_DIR)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="set any ReaderTrainConfig field, e.g. --set n_per_category=32")
    a = p.parse_args(argv)
    cfg = ReaderTrainConfig(device=a.device, threads=a.threads)
    if a.steps is not None:
        cfg.steps = a.steps
    names = {f.name for f in dataclasses.fields(cfg)}
    for item in a.set:
        k, _, v = item.partition("=")
        if k not in names:
            p.error(f"--set: unknown field {k!r}; fields: {', '.join(sorted(names))}")
        try:
            setattr(cfg, k, json.loads(v))
        except ValueError:
            p.error(f"--set {k}: {v!r} is not JSON")
    if cfg.steps <= 0 or cfg.batch_size <= 0 or cfg.n_per_category <= 0:
        p.error("steps, batch_size and n_per_category must be positive")
    train(cfg, Path(a.out), a.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
