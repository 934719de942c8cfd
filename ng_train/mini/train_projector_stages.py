"""The projector and the loops that train it: the warm start and the LM-in-the-loop stages.

Why a module of its own: this is the part of the recipe that changes weights. Each stage draws its turns from
its own random stream (stage 1 from the plain seed, later stages from ``derive_seed``), so continuing a saved
projector with ``--init-from`` gives the same weights as one run; the order of the draws here is part of
what makes a run reproducible.
"""

from __future__ import annotations

import random
import time

import torch
from faker import Faker
from torch import nn

from ng_core.data.images import derive_seed
from ng_core.models.mini import assemble as ML
from ng_train.mini.train_projector_config import TrainConfig
from ng_train.mini.train_projector_turns import sample_turn
from ng_train.mini.train_recipe import (
    GENERAL_QUESTIONS_TRAIN,
    SEED_NAMESPACE,
    WARM_WORDS,
    log_line,
)
from ng_train.mini.train_steps import PrefixCache, answer_loss, lr_at


class Projector:
    """Standardise -> Linear -> GELU -> Linear; folds to a stock LlavaMultiModalProjector."""

    def __init__(self, mean, std, d_in: int, d_out: int, seed: int):
        torch.manual_seed(seed)
        self.mean, self.std = mean, std
        self.net = nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out)).to(mean.device)

    def __call__(self, x):
        return self.net((x - self.mean) / self.std)

    def parameters(self):
        return self.net.parameters()

    def load_folded_state(self, state: dict) -> None:
        """Inverse of :meth:`folded_state` for this projector's standardisation (continue training a saved one)."""
        l1, l2 = self.net[0], self.net[2]
        dev = self.mean.device
        state = {k: v.to(dev) for k, v in state.items()}
        with torch.no_grad():
            w1 = state["linear_1.weight"] * self.std[None, :]
            l1.weight.copy_(w1)
            l1.bias.copy_(state["linear_1.bias"] + (state["linear_1.weight"] * self.mean[None, :]).sum(dim=1))
            l2.weight.copy_(state["linear_2.weight"])
            l2.bias.copy_(state["linear_2.bias"])

    def folded_state(self) -> dict:
        """``linear_1``/``linear_2`` weights with the standardisation folded into ``linear_1``."""
        l1, l2 = self.net[0], self.net[2]
        with torch.no_grad():
            w1 = l1.weight / self.std[None, :]
            b1 = l1.bias - (l1.weight * (self.mean / self.std)[None, :]).sum(dim=1)
        return {
            "linear_1.weight": w1.detach().cpu().clone().contiguous().float(),
            "linear_1.bias": b1.detach().cpu().clone().contiguous().float(),
            "linear_2.weight": l2.weight.detach().cpu().clone().contiguous().float(),
            "linear_2.bias": l2.bias.detach().cpu().clone().contiguous().float(),
        }


def warm_start(cfg: TrainConfig, adapter, proj: Projector, feats, items: list, n_items: int, log=log_line) -> list:
    """Without the LM: regress the tokens of each of the first ``n_items`` images onto the word embeddings of
    its category name (``WARM_WORDS``), so the frozen LM reads a meaningful signal from the first step.
    Returns the curve [(step, mse)]."""
    emb = adapter.lm.embed_tokens.weight.detach()
    tok = adapter.tokenizer
    word_vec = {c: emb[tok(WARM_WORDS[c], add_special_tokens=False).input_ids].mean(0) for c in WARM_WORDS}
    targets = torch.stack([word_vec[c] for c, _, _ in items[:n_items]])  # [n, d]
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(proj.parameters(), lr=cfg.warm_start_lr)
    curve = []
    t = time.perf_counter()
    for step in range(cfg.warm_start_steps):
        idx = torch.randint(0, n_items, (cfg.warm_start_batch,), generator=g)
        pred = proj(feats[idx])  # [64, N, d]
        loss = ((pred - targets[idx][:, None, :]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.warm_start_steps - 1:
            curve.append((step, round(loss.item(), 6)))
    if curve:
        log(f"warm start: mse {curve[0][1]:.4f} -> {curve[-1][1]:.4f} in {time.perf_counter() - t:.1f}s "
            f"(word embedding rms {float(emb.pow(2).mean().sqrt()):.4f})")
    return curve


class StageRunner:
    """Runs the LM-in-the-loop stages on one projector; what they share lives here.

    ``items`` are (category, seed, stats) with ``feats`` their frozen vision features; stages 1-2 draw from the
    first ``n_base_items``, stage 3 from all. ``validate(proj, label) -> (min, mean)`` scores the projector on
    validation images (stages with ``val_every``). Turn counts per kind accumulate in ``kind_counts``; the
    weights each checked stage kept are in ``chosen``.
    """

    def __init__(self, cfg: TrainConfig, adapter, proj: Projector, items: list, feats, n_base_items: int,
                 general_targets: dict, validate=None, log=log_line):
        self.cfg, self.adapter, self.proj = cfg, adapter, proj
        self.items, self.feats, self.n_base_items = items, feats, n_base_items
        self.general_targets, self.validate, self.log = general_targets, validate, log
        self.kind_counts: dict = {}
        self.chosen: dict = {}
        self._seq_cache: dict = {}
        self._prefix: PrefixCache | None = None

    def build(self, question: str, answer: str | None = None, answer_ids: list | None = None):
        """A training sequence: the question and a text answer, or given answer token ids (cached)."""
        if answer_ids is not None:
            key = ("ids", question, tuple(answer_ids))
            if key not in self._seq_cache:
                s = self.adapter.build(question)  # prompt only; the answer ids are appended below
                ids = torch.tensor(answer_ids, dtype=torch.long)
                s.input_ids = torch.cat([s.input_ids, ids[:-1]])
                s.targets = ids
                self._seq_cache[key] = s
            return self._seq_cache[key]
        return self.adapter.build(question, answer=answer + ML.IM_END_TOKEN)

    def sample_batch(self, rng: random.Random, fake, kinds: list, weights: list, item_weights: list) -> tuple:
        """``batch_size`` turns: for each, an image (by ``item_weights``), a kind (by ``weights``), a turn.
        Returns (sequences, image rows, kinds)."""
        seqs, fs, batch_kinds = [], [], []
        for _ in range(self.cfg.batch_size):
            k = rng.choices(range(len(self.items)), item_weights)[0]
            cat, _seed, st = self.items[k]
            kind = rng.choices(kinds, weights)[0]
            self.kind_counts[kind] = self.kind_counts.get(kind, 0) + 1
            if kind == "general":
                q = rng.choice(GENERAL_QUESTIONS_TRAIN)
                seqs.append(self.build(q, answer_ids=self.general_targets[q]))
            else:
                q, a = sample_turn(kind, cat, st, rng, fake, self.cfg.canonical_type_answer)
                seqs.append(self.build(q, answer=a))
            fs.append(k)
            batch_kinds.append(kind)
        return seqs, fs, batch_kinds

    def _check(self, name: str, label: str, params: list, ema: list | None, best: tuple | None) -> tuple:
        """Validate the (moving-average) weights; returns the better of ``best`` and this check. The live
        weights are restored afterwards."""
        live = [q.detach().clone() for q in params]
        with torch.no_grad():
            if ema is not None:
                for q, e in zip(params, ema):
                    q.copy_(e)
            score = self.validate(self.proj, f"{name}:{label}")
            if best is None or score > best[0]:
                best = (score, [q.detach().clone() for q in params], label)
            for q, v in zip(params, live):
                q.copy_(v)
        return best

    def run_stage(self, name: str, steps: int, lr: float, warmup: int, mix: dict, category_weights: dict,
                  ema_decay: float = 0.0, val_every: int = 0) -> list:
        """One training stage. With ``val_every``, the (moving-average) weights are checked on the validation
        images before the first step and every ``val_every`` steps, and the best checked weights are kept."""
        cfg, proj = self.cfg, self.proj
        # stage 1 draws from the plain seed; stage 2 from its own stream, so that continuing a saved stage-1
        # projector with --init-from gives the same stage 2 as the full run
        stage_seed = cfg.seed if name == "stage1" else derive_seed(SEED_NAMESPACE, "stage", name, cfg.seed)
        rng = random.Random(stage_seed)
        fake = Faker("en_US")
        fake.seed_instance(stage_seed)
        kinds = list(mix)
        weights = [mix[k] for k in kinds]
        # stages 1-2 see their own images only (zero weights at the end leave their draws unchanged)
        n_items = len(self.items) if name == "stage3" else self.n_base_items
        item_weights = [category_weights.get(c, 1.0) if k < n_items else 0.0
                        for k, (c, _, _) in enumerate(self.items)]
        opt = torch.optim.AdamW(proj.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        curve = []
        running = None
        t_stage = time.perf_counter()
        sched = dict(steps=steps, lr=lr, warmup=warmup, min_ratio=cfg.min_lr_ratio)
        params = list(proj.parameters())
        ema = [q.detach().clone() for q in params] if ema_decay > 0 else None
        best = None  # (score, weights, label)
        if val_every:
            best = self._check(name, "start", params, ema, best)
        for step in range(steps):
            cur_lr = lr_at(step, **sched)
            for group in opt.param_groups:
                group["lr"] = cur_lr
            seqs, fs, batch_kinds = self.sample_batch(rng, fake, kinds, weights, item_weights)
            projected = proj(self.feats[torch.tensor(fs)])
            if self._prefix is None:
                self._prefix = PrefixCache(self.adapter, seqs[0])
            with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.autocast_bf16):
                loss, per_seq = answer_loss(self.adapter, seqs, list(projected), self._prefix)
            opt.zero_grad()
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(list(proj.parameters()), cfg.grad_clip)
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for q, e in zip(params, ema):
                        e.mul_(ema_decay).add_(q.detach(), alpha=1 - ema_decay)
            if val_every and ((step + 1) % val_every == 0 or step == steps - 1):
                best = self._check(name, f"step{step + 1}", params, ema, best)
            lv = loss.item()
            running = lv if running is None else 0.9 * running + 0.1 * lv
            by_kind: dict = {}
            for kd, v in zip(batch_kinds, per_seq):
                by_kind.setdefault(kd, []).append(float(v))
            curve.append({"stage": name, "step": step, "loss": round(lv, 4), "lr": round(cur_lr, 6),
                          "grad_norm": round(float(gnorm), 4),
                          "by_kind": {kd: round(sum(v) / len(v), 4) for kd, v in by_kind.items()}})
            if step % cfg.log_every == 0 or step == steps - 1:
                el = time.perf_counter() - t_stage
                self.log(f"{name} step {step + 1}/{steps} loss {lv:.3f} (ema {running:.3f}) lr {cur_lr:.2e} "
                         f"{el / (step + 1):.2f}s/step, eta {el / (step + 1) * (steps - step - 1) / 60:.1f} min")
        if best is not None:
            with torch.no_grad():
                for q, b in zip(params, best[1]):
                    q.copy_(b)
            self.chosen[name] = {"at": best[2], "min": best[0][0], "mean": best[0][1]}
            self.log(f"{name}: keeping the weights checked at {best[2]} (validation min {best[0][0]:.2f}, "
                     f"mean {best[0][1]:.3f})")
        return curve
