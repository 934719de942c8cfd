"""Neural Gate Stage C (gated fine-tuning of ``down_proj``) and Stage D (deltas).

For every training image and each of its first ``questions_per_image`` paraphrases,
one edit: 10 Adam steps (lr 1e-5, eps 1e-3, a new optimiser per edit, weights carried
over) on refusal NLL + 1.25 x the NLL of the unedited model's answer to the matching
benign neighbour. The trained tensor is a fp32 ``ΔW`` applied through a hook (see
:mod:`ng_core.method.interventions`), which is the authors' fp32-master recommendation and
leaves the base weights untouched.

Gradient gate scopes:
- ``subject_position`` (the code's behaviour): at the subject token, non-mask dims of
  the layer output are detached; other positions still update every row of ``W``.
- ``all_positions``: non-mask dims are detached at every position, so rows outside
  the mask receive exactly zero gradient.
- ``weight_rows``: the paper's wording; the ``ΔW`` gradient is row-masked, so rows
  outside the mask change by exactly 0.

Schedules: ``naive`` runs the full model (image encoded) at every step, like the
reference; ``fast`` caches the hidden states entering layer l once per edit (nothing
below l changes) and runs only layers l..L, the start of the prompt that an edit's rows share
(image block, read lines) once per step for all of them, and text-only rows unpadded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ng_core.data.general import (BENIGN_IMAGE_POOL, benign_image, benign_image_question, general_questions,
                                  same_image_question)
from ng_core.data.records import ImageRecord
from ng_core.errors import ArgumentError
from ng_core.method.interventions import Delta, delta_hooks, position_selector
from ng_core.method.locality import LocalityCache
from ng_core.method.losses import answer_nll
from ng_core.method.registry import EDIT, GATE_SCOPES, LEARNED, get_method, names
from ng_core.models.adapter import Batch
from ng_core.models.decoding import common_prefix_len
from ng_core.models.hooks import (HookSpec, execution_device, layer_output_tensor, replace_layer_output,
                                  stored_weight)
from ng_core.models.imagecache import encode, read
from ng_core.models.memory import check_stage_c
from ng_core.progress import as_progress
from ng_core.storage.bundle_check import finite_number


@dataclass
class EditConfig:
    """Stage C hyperparameters; defaults are the authors' (llava-1.5-7b) values."""

    lr: float = 1e-5
    eps: float = 1e-3
    steps: int = 10
    questions_per_image: int = 5
    kl_factor: float = 1.25
    early_stop: float = 1e-3
    gate_scope: str = "subject_position"
    neighbour_words: int = 5
    schedule: str = "fast"
    method: str = LEARNED
    seed: int = 0
    general_weight: float = 0.0  # weight of the general-question locality term (0: the authors' loss)
    general_per_edit: int = 2  # general questions added to each edit's batch (cycled, deterministic)
    general_words: int = 10  # words of the unedited answer used as the general target
    mix_wordings: bool = False  # alternate the record's template families with its other ones (see edit_items)
    # harmless questions about the edit's own image (what it is, its colour) per edit, answered as the unedited
    # model does, each weighted like the neighbour (kl_factor); 0: none (the authors' loss)
    same_image_questions: int = 0
    # harmless questions about benign images that are not the edit's (charts, landscapes drawn in the project's
    # style) per edit, answered as the unedited model does, each weighted like the neighbour; 0: none
    benign_image_questions: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        for k in ("lr", "eps"):
            finite_number(getattr(self, k), f"edit {k}", positive=True, error=ArgumentError)
        for k in ("kl_factor", "early_stop", "general_weight"):
            finite_number(getattr(self, k), f"edit {k}", minimum=0, error=ArgumentError)
        for k in ("steps", "questions_per_image"):
            finite_number(getattr(self, k), f"edit {k}", integer=True, minimum=1, error=ArgumentError)
        for k in ("neighbour_words", "general_per_edit", "general_words", "same_image_questions",
                  "benign_image_questions"):
            finite_number(getattr(self, k), f"edit {k}", integer=True, minimum=0, error=ArgumentError)
        if self.gate_scope not in GATE_SCOPES:
            raise ValueError(f"gate_scope must be one of {tuple(GATE_SCOPES)}, not {self.gate_scope!r}")
        if self.method not in names(EDIT):
            raise ValueError(f"method must be one of {names(EDIT)}, not {self.method!r}")
        if self.schedule not in ("fast", "naive"):
            raise ValueError(f"schedule must be 'fast' or 'naive', not {self.schedule!r}")


@dataclass
class EditItem:
    """One edit: a sensitive paraphrase with its refusal target, a benign neighbour, and optionally
    harmless questions about the same image ``(prompt, unedited answer)``, about benign images and general
    questions ``(image|None, prompt, unedited answer)`` for locality."""

    image: object
    prompt: str
    subject: str
    target: str
    neighbour: str | None
    neighbour_target: str | None
    general: tuple = ()
    harmless: tuple = ()
    benign: tuple = ()


@dataclass
class EditResult:
    layer: int
    delta: torch.Tensor  # fp32 [d, d_ff]
    gate: torch.Tensor  # bool [d] rows the gradient was allowed into (all True for a method without a gate)
    losses: list = field(default_factory=list)  # per step dicts
    diagnostics: dict = field(default_factory=dict)


def _alternate(a, b) -> tuple:
    return tuple(x for pair in zip(a, b) for x in pair)


def record_wordings(r: ImageRecord, mix: bool) -> tuple[tuple, tuple]:
    """(paraphrases, neighbours) of ``r``; with ``mix``, each alternates with the same image's questions in the
    project's other template families (``extra["other_wordings"]``, set by the project's loader for train
    images), so one edit learns a question's meaning in two ways of asking it. Records without them (the paper's
    files, uploads) are unchanged."""
    other = r.extra.get("other_wordings") if mix else None
    if not isinstance(other, dict):
        return tuple(r.paraphrases), tuple(r.neighbours)
    return (_alternate(r.paraphrases, other.get("paraphrases") or ()) or tuple(r.paraphrases),
            _alternate(r.neighbours, other.get("neighbours") or ()) or tuple(r.neighbours))


def edit_items(records: list[ImageRecord], cfg: EditConfig, locality: LocalityCache) -> list[EditItem]:
    """The sequential edit list: images in order, ``questions_per_image`` paraphrases each."""
    pairs = []
    for r in records:
        paraphrases, neighbours = record_wordings(r, cfg.mix_wordings)
        for i, p in enumerate(paraphrases[: cfg.questions_per_image]):
            nb = neighbours[i] if i < len(neighbours) else None
            pairs.append((r, p, nb))
    locality.prefetch([(r.image, nb, r.subject) for r, _, nb in pairs if nb])
    general = _general_plan(pairs, cfg)
    locality.prefetch([g for gs in general for g in gs])
    same = [[(r.image, same_image_question(i * cfg.same_image_questions + j, r.subject), None)
             for j in range(cfg.same_image_questions)] for i, (r, _, _) in enumerate(pairs)]
    locality.prefetch([q for qs in same for q in qs])
    benign = [_benign_plan(i, cfg.benign_image_questions) for i in range(len(pairs))]
    locality.prefetch([q for qs in benign for q in qs])
    items = []
    for (r, p, nb), gs, ss, bs in zip(pairs, general, same, benign):
        y_n = locality.answer(r.image, nb, r.subject, cfg.neighbour_words) if nb else None
        gen = tuple((im, q, y) for im, q, _ in gs if (y := locality.answer(im, q, None, cfg.general_words)))
        harmless = tuple((q, y) for im, q, _ in ss if (y := locality.answer(im, q, None, cfg.general_words)))
        ben = tuple((im, q, y) for im, q, _ in bs if (y := locality.answer(im, q, None, cfg.general_words)))
        items.append(EditItem(r.image, p, r.subject, r.target, nb if y_n else None, y_n or None, gen, harmless,
                              ben))
    return items


def _benign_plan(i: int, n: int) -> list:
    """The ``n`` benign-image questions of edit ``i``: images and questions cycled on strides that pair each
    image with every question in turn."""
    out = []
    for j in range(n):
        k = i * n + j
        im, subject = benign_image(k % BENIGN_IMAGE_POOL)
        out.append((im, benign_image_question(k // BENIGN_IMAGE_POOL + k, subject), None))
    return out


def _general_plan(pairs, cfg: EditConfig) -> list[list]:
    """Which general questions join each edit: the train split, cycled in a fixed order."""
    if cfg.general_weight <= 0 or cfg.general_per_edit <= 0:
        return [[] for _ in pairs]

    qs = general_questions("train")
    out, k = [], 0
    for r, _, _ in pairs:
        chosen = []
        for _ in range(cfg.general_per_edit):
            q = qs[k % len(qs)]
            k += 1
            chosen.append((r.image if q.image else None, q.prompt, None))
        out.append(chosen)
    return out


def gate_for_method(selected: torch.Tensor, method: str, seed: int = 0) -> torch.Tensor:
    """The rows ``method`` lets the gradient into, from the learned mask's ``selected`` rows (its record's gate:
    the mask, every row, a random set of equal size, its complement, ...)."""
    return get_method(method, EDIT).gate(selected, seed)


def _gate_hook(adapter, layer: int, gate: torch.Tensor, scope: str, subject_pos: torch.Tensor):
    def fn(module, args, kwargs, output):
        h = layer_output_tensor(output)
        keep = gate.to(h.device)[None, None, :]
        if scope == "subject_position":
            sel = position_selector(kwargs["position_ids"], subject_pos).to(h.device)[..., None]
            keep = keep | ~sel
        return replace_layer_output(output, torch.where(keep, h, h.detach()))

    return adapter.hook(f"blocks.{layer}.hook_resid_post", fn, f"gradient gate ({scope})")


class _GradProbe:
    """Measures how much of the first step's ΔW gradient comes from the subject positions.

    ∂L/∂W = Σ_t g_t u_tᵀ over positions t; the subject rows contribute Σ_i g_{i,s_i} u_{i,s_i}ᵀ.
    Runs after the delta hook on ``down_proj`` so g is the gradient of the edited output.
    """

    def __init__(self, module, subject_pos: torch.Tensor):
        self.subject_pos = subject_pos
        self.u = self.g = None
        self.sel = None
        self.spec = HookSpec(module, self._fn, "output", "gradient probe")

    def _fn(self, module, args, kwargs, output):
        x = args[0]
        # position ids are not visible to the MLP: subject positions index the unpadded rows (right padding)
        rows = (self.subject_pos >= 0).nonzero()[:, 0]
        cols = self.subject_pos[rows]
        self.u = x.detach()[rows, cols].float()
        self._rows, self._cols = rows, cols

        def grab(g):
            self.g = g.detach()[self._rows, self._cols].float()

        if output.requires_grad:
            output.register_hook(grab)
        return None

    def subject_share(self, full_grad: torch.Tensor) -> float:
        if self.g is None or self.u is None:
            return 0.0
        part = self.g.T.to(full_grad.device) @ self.u.to(full_grad.device)
        total = float(full_grad.norm())
        return float(part.norm()) / total if total > 0 else 0.0


def shared_prompt_prefix(seqs, image_keys: list[str]) -> tuple[list[int], int]:
    """Rows that share row 0's image and the start of its prompt, and the length P of that start (0: none).

    The refusal, neighbour and image-bearing general rows of one edit differ only from their question on;
    the image block and the lines read from it come first. P stops before any row's subject token (a
    subject-position gate must see it in a row of its own) and before any answer.
    """
    rows = [i for i, k in enumerate(image_keys) if k == image_keys[0] and seqs[i].input_ids.numel()]
    if len(rows) < 2:
        return [], 0
    P = common_prefix_len([seqs[i] for i in rows])
    return (rows, P) if P > 0 else ([], 0)


def _shared_prefix_nll(adapter, layer: int, h_in: torch.Tensor, batch, shared: list[int], P: int,
                       spos: torch.Tensor, specs_for) -> torch.Tensor:
    """[B] answer NLL with the shared prompt start run once per step, not once per row.

    The prefix depends on ΔW (its layers above ``layer`` see the edited ``down_proj``), so it is rerun at
    every step, but as one row: its keys/values, with their autograd history, are expanded over the shared
    rows, whose tails continue them. Rows without the image (text-only general questions) run on their own,
    unpadded to the image rows' length. Same loss as one padded batch, up to float32 rounding (tested).
    """
    lengths = batch.attention_mask.sum(1).tolist()  # right padding: row i holds its tokens at [0, n_i)
    others = [i for i in range(batch.size) if i not in shared]
    parts: dict[int, torch.Tensor] = {}
    r0 = shared[0]
    pre = Batch(h_in[r0:r0 + 1, :P], batch.attention_mask[r0:r0 + 1, :P], batch.position_ids[r0:r0 + 1, :P],
                torch.zeros(1, dtype=torch.long), [batch.seqs[r0]])
    cache = adapter.new_cache()
    with adapter.hooked(specs_for(spos[shared])):  # no subject inside the prefix: the gate passes it whole
        adapter.run_layers(pre.embeds, layer, pre, cache=cache)
    adapter.cache_expand_rows(cache, len(shared), start=layer)
    tail = adapter.collate_embeds([h_in[i, P:lengths[i]] for i in shared], [batch.seqs[i] for i in shared])
    tail.position_ids = tail.position_ids + P
    tail.attention_mask = torch.cat([pre.attention_mask.expand(len(shared), P), tail.attention_mask], dim=1)
    tail_spos = torch.where(spos[shared] >= 0, spos[shared] - P, spos[shared])
    with adapter.hooked(specs_for(spos[shared], tail_spos)):
        hidden = adapter.run_layers(tail.embeds, layer, tail, cache=cache)
        nll = answer_nll(adapter, hidden, tail, tail_start=torch.full((len(shared),), P, dtype=torch.long))
    parts.update(zip(shared, nll))
    if others:
        rest = adapter.collate_embeds([h_in[i, :lengths[i]] for i in others], [batch.seqs[i] for i in others])
        with adapter.hooked(specs_for(spos[others])):
            parts.update(zip(others, answer_nll(adapter, adapter.run_layers(rest.embeds, layer, rest), rest)))
    return torch.stack([parts[i] for i in range(batch.size)])


class _EditRows:
    """One edit's rows, as its steps use them: the sequences, their loss weights, subject positions and images,
    and (fast schedule) the hidden states entering the layer and the prompt start the rows share."""

    def __init__(self, adapter, it: EditItem, layer: int, cfg: EditConfig, base_deltas):
        reading = read(adapter, it.image)
        seqs = [adapter.build(it.prompt, subject=it.subject, answer=it.target, reading=reading)]
        weights = [1.0]
        images = [it.image]
        if it.neighbour:
            seqs.append(adapter.build(it.neighbour, subject=it.subject, answer=it.neighbour_target, reading=reading))
            weights.append(cfg.kl_factor)
            images.append(it.image)
        for q, y in it.harmless:
            seqs.append(adapter.build(q, answer=y, reading=reading))
            weights.append(cfg.kl_factor)
            images.append(it.image)
        for im, q, y in it.benign:
            seqs.append(adapter.build(q, answer=y, reading=read(adapter, im)))
            weights.append(cfg.kl_factor)
            images.append(im)
        for im, q, y in it.general:
            seqs.append(adapter.build(q, answer=y, has_image=im is not None, reading=read(adapter, im)))
            weights.append(cfg.general_weight / len(it.general))
            images.append(im)
        check_stage_c(adapter, seqs, layer)  # the edit's rows run together: refuse plainly if they cannot fit
        self.seqs, self.images = seqs, images
        self.w = torch.tensor(weights)
        self.spos = torch.tensor([s.subject_pos if s.subject_pos is not None else -1 for s in seqs], dtype=torch.long)
        self.batch = self.h_in = None
        self.shared, self.P = [], 0
        if cfg.schedule == "fast":
            self.batch = adapter.collate(seqs, self.features(lambda im: encode(adapter, im)))
            with adapter.hooked(delta_hooks(adapter, list(base_deltas))):
                self.h_in = adapter.hidden_entering(layer, self.batch)
            self.shared, self.P = shared_prompt_prefix(seqs, [str(im) for im in images])

    def features(self, encode_image) -> list:
        """Each row's image features (None for a text-only row), each image encoded once."""
        cache = {}
        return [None if im is None else cache.setdefault(str(im), encode_image(im)) for im in self.images]


class _StageC:
    """What every edit of one :func:`gated_finetune` shares: the trained ΔW, its gate and how the gate acts."""

    def __init__(self, adapter, layer: int, gate: torch.Tensor, cfg: EditConfig, base_deltas,
                 init_delta: torch.Tensor | None):
        self.adapter, self.layer, self.cfg, self.base_deltas = adapter, layer, cfg, base_deltas
        self.W = stored_weight(adapter.down_proj(layer))  # also where accelerate offloads the layer to the CPU or disk
        dev = execution_device(adapter.down_proj(layer))
        master = torch.float64 if self.W.dtype == torch.float64 else torch.float32  # fp32 master, or wider (tests)
        self.delta = (init_delta.clone().to(device=dev, dtype=master) if init_delta is not None
                      else torch.zeros(self.W.shape, dtype=master, device=dev)).requires_grad_(True)
        self.gate = gate.to(torch.bool).reshape(-1)
        gated = get_method(cfg.method, EDIT).gated  # False: every row trains, no gradient gate at all
        self.hook_gate = gated and cfg.gate_scope in ("subject_position", "all_positions")
        self.row_mask = self.gate.to(dev)[:, None].float() if gated and cfg.gate_scope == "weight_rows" else None
        self.shares: list[float] = []  # the first step's subject gradient share, per edit

    def _specs_for(self, probe):
        def specs_for(gate_spos, probe_spos=None):
            """Hooks of one pass: the deltas, the gradient gate (absolute subject positions of its rows) and, on
            the first step, the probe (subject positions within the pass's tensors)."""
            adapter = self.adapter
            others = list(delta_hooks(adapter, list(self.base_deltas)))
            specs = delta_hooks(adapter, [Delta(self.layer, self.delta)]) + others
            if probe is not None and probe_spos is not None:
                probe.subject_pos = probe_spos
                specs.append(probe.spec)
            if self.hook_gate:
                specs.append(_gate_hook(adapter, self.layer, self.gate, self.cfg.gate_scope, gate_spos))
            return specs

        return specs_for

    def _nll(self, rows: _EditRows, probe) -> torch.Tensor:
        """[B] answer NLL of the edit's rows with the current ΔW (and the gate, and the probe)."""
        adapter, layer, specs_for = self.adapter, self.layer, self._specs_for(probe)
        if self.cfg.schedule == "fast" and rows.P:
            return _shared_prefix_nll(adapter, layer, rows.h_in, rows.batch, rows.shared, rows.P, rows.spos,
                                      specs_for)
        with adapter.hooked(specs_for(rows.spos, rows.spos)):  # right padding: tensor position = position
            if self.cfg.schedule == "fast":
                batch = rows.batch
                hidden = adapter.run_layers(rows.h_in, layer, batch)
            else:
                batch = adapter.collate(rows.seqs, rows.features(adapter.encode_image_uncached))
                hidden = adapter.forward(batch)
            return answer_nll(adapter, hidden, batch)

    def step(self, rows: _EditRows, it: EditItem, e_i: int, step: int, opt, on_record) -> bool:
        """One step of edit ``e_i``: its loss, given to ``on_record`` as a loss record, then one Adam update.
        Returns whether the loss was already under ``early_stop`` (then nothing is updated)."""
        probe = _GradProbe(self.adapter.down_proj(self.layer), rows.spos) if step == 0 else None
        nll = self._nll(rows, probe)
        loss = (nll * rows.w).sum()
        on_record(_loss_record(it, e_i, step, loss, nll))
        if float(loss.detach()) < self.cfg.early_stop:
            return True
        opt.zero_grad()
        loss.backward()
        if probe is not None:
            self.shares.append(probe.subject_share(self.delta.grad))
        if self.row_mask is not None:
            self.delta.grad.mul_(self.row_mask)
        opt.step()
        return False

    def diagnostics(self, init_delta: torch.Tensor | None) -> dict:
        """Gate leak (share of the change outside the gated rows), the change's and the weight's norms, and the
        mean subject gradient share of the first steps."""
        diag = {}
        with torch.no_grad():
            dW = self.delta.detach()
            change = dW - init_delta.float().to(dW.device) if init_delta is not None else dW
            total_norm = float(change.norm())
            outside = float(change[~self.gate.to(change.device)].norm()) if (~self.gate).any() else 0.0
            diag["gate_leak"] = (outside / total_norm) if total_norm > 0 else 0.0
            diag["delta_norm"] = total_norm
            diag["weight_norm"] = float(self.W.float().norm())
            if self.shares:
                diag["subject_grad_share"] = sum(self.shares) / len(self.shares)
        return diag


def _loss_record(it: EditItem, e_i: int, step: int, loss: torch.Tensor, nll: torch.Tensor) -> dict:
    """A step's losses: the total, the refusal's and the mean of each kind of locality row the edit has."""
    rec = {"edit": e_i, "step": step, "loss": float(loss.detach()), "refusal_nll": float(nll[0].detach())}
    if it.neighbour:
        rec["neighbour_nll"] = float(nll[1].detach())
    if it.harmless:
        first = 1 + bool(it.neighbour)
        rec["harmless_nll"] = float(nll[first:first + len(it.harmless)].detach().mean())
    if it.benign:
        first = 1 + bool(it.neighbour) + len(it.harmless)
        rec["benign_nll"] = float(nll[first:first + len(it.benign)].detach().mean())
    if it.general:
        rec["general_nll"] = float(nll[len(nll) - len(it.general):].detach().mean())
    return rec


def gated_finetune(adapter, items: list[EditItem], layer: int, gate: torch.Tensor, cfg: EditConfig | None = None,
                   base_deltas: list[Delta] = (), init_delta: torch.Tensor | None = None, progress=None,
                   label: str = "") -> EditResult:
    """Stage C over ``items`` at ``layer``; returns the accumulated fp32 ΔW (base weights untouched).

    ``base_deltas`` are other active edits (other layers); ``init_delta`` continues a
    previous category's ΔW at this layer (sequential editing, as in the code).
    """
    cfg = cfg or EditConfig()
    prog = as_progress(progress)
    adapter.check_layer(layer)
    sc = _StageC(adapter, layer, gate, cfg, base_deltas, init_delta)
    losses = []
    total = len(items) * cfg.steps
    done = 0

    def on_record(rec: dict) -> None:
        nonlocal done
        losses.append(rec)
        done += 1
        prog.update("edit", done, total, f"{label} edit {rec['edit'] + 1}/{len(items)} step {rec['step'] + 1}",
                    **{k: v for k, v in rec.items() if k not in ("edit", "step")})

    for e_i, it in enumerate(items):
        rows = _EditRows(adapter, it, layer, cfg, base_deltas)
        opt = torch.optim.Adam([sc.delta], lr=cfg.lr, eps=cfg.eps, weight_decay=0.0)
        for step in range(cfg.steps):
            if sc.step(rows, it, e_i, step, opt, on_record):
                done += cfg.steps - step - 1
                break
    diag = sc.diagnostics(init_delta)
    dW = sc.delta.detach()
    return EditResult(layer, dW.cpu() if dW.device.type != "cpu" else dW, sc.gate, losses, diag)
