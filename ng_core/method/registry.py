"""Every method and gate scope the project knows: each method is one :class:`Method` record, named once.

A record says what a method is called (its name, its titles) and what it does: for a weight edit, the gate its
gradient goes through and what that gate needs; for an evaluation, what it takes from a run (a weight edit's
deltas, inference-time gates) and whether it prepends the system prompt; for a neuron score, the function that
computes it and what that function needs (prompt pairs, or learning the mask). The CLI's choices, the report's
methods and titles, the sweep's gates, the pipeline, the trade-off, the evaluation, the scores and the dashboard
all read these records instead of comparing method names. Adding a method is one :func:`register` call here
(and, for a weight edit with hyperparameters of its own, its preset file: see :attr:`Method.preset`). The
unedited model, the reference every other method is compared with, is named once: :data:`BASELINE`.

This module loads without torch (``ng --help`` reads it): the gates and the scores import torch when they run.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: The kinds of method: a weight edit (``ng edit --method``), an evaluation without a weight edit
#: (``ng evaluate --method``), a per-neuron privacy score (``ng scores --method``).
EDIT, EVALUATION, SCORE = "edit", "evaluation", "score"
KINDS = (EDIT, EVALUATION, SCORE)

#: (the learned mask's selected rows, bool [d]; seed) -> the rows of down_proj the gradient may enter, bool [d]
Gate = Callable[["torch.Tensor", int], "torch.Tensor"]

#: (adapter, records, ScoreConfig, MaskConfig or None, progress) -> {"<method>/<unit>": scores [layers, neurons],
#: "<method>/<unit>_freq": ...}: a neuron score's arrays (:func:`ng_core.method.score_run.compute_scores`).
Scorer = Callable[..., dict]

#: What an evaluation does with a weight edit's deltas or with inference-time gates: it needs them, it may take
#: them (applied with what it does itself), or it never takes them.
NEEDS, MAY, NEVER = "needs", "may", "never"
USES = (NEEDS, MAY, NEVER)


@dataclass(frozen=True)
class Method:
    """One method: what it is called everywhere and what it does (a weight edit's gate, what an evaluation takes,
    how a neuron score is computed)."""

    name: str  # the key: CLI choice, run config ("edit.method"), report stage, result file name
    kind: str  # EDIT, EVALUATION or SCORE
    title: str  # its title in report tables, charts and the dashboard ("Neural Gate")
    description: str  # one line: what it is or what it isolates (CLI help)
    gate: Gate | None = None  # weight edits only: which rows of down_proj train (see :data:`Gate`)
    choice_title: str = ""  # the Edit page's longer title, when the title alone does not explain the choice
    needs_masks: bool = False  # uses the learned privacy-neuron masks (Stages A+B run first unless given)
    gated: bool = True  # weight edits: a gradient gate applies at all (False: every row trains, no gate hook,
    #                     no row mask, and a random gate "of the same size" would be the same edit)
    control: bool = False  # a control of the learned gate (compared with it), not a defence of its own
    gate_title: str = ""  # its short name among ``ng sweep``'s gates ("learned"); "": not one of the sweep's gates
    in_report: bool = False  # ``ng report`` compares it (its tables list methods in registration order)
    preset: str = "neural_gate"  # weight edits: the preset family (presets/<preset>.<model>.json) of its settings
    takes_deltas: str = ""  # a weight edit's deltas: NEEDS, MAY or NEVER ("": a weight edit NEEDS its own, an
    #                         evaluation MAY take a run's, a neuron score NEVER does)
    takes_gates: str = ""  # inference-time gates (built from a run's masks): NEEDS, MAY or NEVER ("": MAY, and
    #                        NEVER for a neuron score)
    system_prompt: bool = False  # evaluations: the defence's system prompt is prepended to every prompt
    score: Scorer | None = None  # neuron scores only: what computes the arrays (see :data:`Scorer`)
    learned: bool = False  # neuron scores: learned by Stage A's optimisation (its steps, the mask settings), not
    #                        computed in passes over prompt pairs (then the token position and the pair cap apply)
    min_pairs: int = 0  # neuron scores: the (privacy, benign) prompt pairs it compares, at least (0: it uses none)
    long_after_layers: int = 0  # neuron scores: on a large model, more layers than this make a long job (0: never)
    score_label: str = ""  # neuron scores: what one score value is, for axes and captions ("": "score")
    freq_label: str = ""  # neuron scores: what its per-neuron frequency is, when it has one ("": none)

    def __post_init__(self):
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"a method name is letters, digits and underscores, not {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if (self.gate is not None) != (self.kind == EDIT):
            raise ValueError(f"method {self.name}: a weight edit has a gate, and only a weight edit has one")
        if (self.score is not None) != (self.kind == SCORE):
            raise ValueError(f"method {self.name}: a neuron score has a scorer, and only a neuron score has one")
        if not self.takes_deltas:  # frozen: the defaults by kind are set once, here
            object.__setattr__(self, "takes_deltas", {EDIT: NEEDS, EVALUATION: MAY, SCORE: NEVER}[self.kind])
        if not self.takes_gates:
            object.__setattr__(self, "takes_gates", NEVER if self.kind == SCORE else MAY)
        if self.takes_deltas not in USES or self.takes_gates not in USES:
            raise ValueError(f"method {self.name}: takes_deltas and takes_gates are one of {USES}")
        if self.edits and self.takes_deltas != NEEDS:
            raise ValueError(f"method {self.name}: a weight edit is evaluated with its own deltas (NEEDS)")

    @property
    def edits(self) -> bool:
        """Whether it is a weight edit."""
        return self.kind == EDIT

    @property
    def takes_control(self) -> bool:
        """Whether a random-gate control of the same size says something about it: a gated edit that is not
        itself a control (does *which* rows are gated matter?)."""
        return self.edits and self.gated and not self.control

    @property
    def baseline(self) -> bool:
        """Whether it is the unedited model, the reference every other method is compared with
        (:data:`BASELINE`): its own answers are the locality reference, and it takes no deltas or gates."""
        return self.name == BASELINE

    @property
    def takes_run(self) -> bool:
        """Whether it evaluates anything from a run: a weight edit's deltas or gates from the run's masks."""
        return self.takes_deltas != NEVER or self.takes_gates != NEVER

    @property
    def long_title(self) -> str:
        """The title that explains the choice (the Edit page's method list)."""
        return self.choice_title or self.title


_METHODS: dict[str, Method] = {}


def register(m: Method) -> Method:
    """Add ``m`` (after the methods already known: that is its place in lists and reports)."""
    if m.name in _METHODS:
        raise ValueError(f"a method named {m.name!r} is already registered")
    _METHODS[m.name] = m
    return m


def unregister(name: str) -> None:
    """Remove a registered method (a test's toy method; a shipped method is never removed)."""
    _METHODS.pop(name, None)


@contextmanager
def registered(m: Method) -> Iterator[Method]:
    """``m`` registered for the duration of the block, and always removed after it."""
    register(m)
    try:
        yield m
    finally:
        unregister(m.name)


def methods(kind: str | None = None) -> tuple[Method, ...]:
    """The registered methods (of one kind), in registration order."""
    return tuple(m for m in _METHODS.values() if kind is None or m.kind == kind)


def names(kind: str | None = None) -> tuple[str, ...]:
    """Their names: the choices of ``ng edit --method`` (EDIT), ``ng scores --method`` (SCORE), ..."""
    return tuple(m.name for m in methods(kind))


def find_method(name: str) -> Method | None:
    return _METHODS.get(name)


def get_method(name: str, kind: str | None = None) -> Method:
    """The record of ``name`` (of ``kind``, when given); ValueError naming the choices otherwise."""
    m = _METHODS.get(name)
    if m is None or (kind is not None and m.kind != kind):
        what = f"{kind} method" if kind else "method"
        raise ValueError(f"unknown {what} {name!r}; use one of {', '.join(names(kind))}")
    return m


def title(name: str) -> str:
    """A method's title; an unknown name (e.g. a report variant ``neural_gate@seed=1``) as it is."""
    m = _METHODS.get(name)
    return m.title if m is not None else name


def report_methods() -> tuple[str, ...]:
    """The methods ``ng report`` compares, in the order of its tables."""
    return tuple(m.name for m in _METHODS.values() if m.in_report)


def sweep_gates() -> tuple[Method, ...]:
    """The gates ``ng sweep`` compares (the learned one and its controls), in registration order."""
    return tuple(m for m in _METHODS.values() if m.gate_title)


def with_control(name: str) -> tuple[str, ...]:
    """``name`` and the random-gate control of the same size that a trade-off draws next to it: none for an edit
    without a gate (a random gate as large as every row is the same edit) nor for the control itself."""
    m = get_method(name, EDIT)
    return (m.name,) if not m.gated or m.name == RANDOM_CONTROL else (m.name, RANDOM_CONTROL)


# ------------------------------------------------------------------------------------------ the gates
def learned_gate(selected: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The learned mask itself."""
    return selected.clone()


def every_row(selected: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Every row: no gate."""
    import torch  # deferred: keeps torch out of ``ng --help``

    return torch.ones(selected.numel(), dtype=torch.bool)


def random_gate(selected: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """As many rows as the learned mask selects, drawn at random (seeded)."""
    import torch  # deferred: keeps torch out of ``ng --help``

    d = selected.numel()
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(d, generator=g)[: int(selected.sum())]
    out = torch.zeros(d, dtype=torch.bool)
    out[idx] = True
    return out


def complement_gate(selected: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Every row the learned mask does not select."""
    return ~selected


# ------------------------------------------------------------------------------------------ the neuron scores
# (ng_core.method.scores computes them; see :data:`Scorer`)
def contrast_score(adapter, records, cfg, mask_cfg=None, progress=None) -> dict:
    """Paired Cohen's d of the activations on privacy vs benign prompts, one forward pass per prompt."""
    from ng_core.method.scores import contrast_scores  # deferred: torch, kept out of ``ng --help``

    return contrast_scores(adapter, records, cfg, progress)


def gradxact_score(adapter, records, cfg, mask_cfg=None, progress=None) -> dict:
    """Gradient x activation of the refusal-vs-answer log-likelihood, one backward pass per prompt."""
    from ng_core.method.scores import gradxact_scores  # deferred: torch, kept out of ``ng --help``

    return gradxact_scores(adapter, records, cfg, progress)


def mask_score(adapter, records, cfg, mask_cfg=None, progress=None) -> dict:
    """Stage A's masks, learned jointly on the chosen layers (``mask_cfg``: their settings)."""
    from ng_core.method.scores import mask_scores  # deferred: torch, kept out of ``ng --help``

    return mask_scores(adapter, records, cfg, mask_cfg, progress)


# ------------------------------------------------------------------------------------------ the methods
#: The method whose gate is the learned mask (the report's and the sweep's reference; its masks are the ones the
#: controls and the inference-time gate reuse), and its random-gate control of the same size.
LEARNED = "neural_gate"
RANDOM_CONTROL = "random_gate"
#: The unedited model: the reference every other method is compared with (the report's first stage, every other
#: evaluation's locality reference, the trade-off's baseline point).
BASELINE = "unedited"

register(Method(BASELINE, EVALUATION, "Unedited", "the model as it is (no edit, no gate)", in_report=True,
                takes_deltas=NEVER, takes_gates=NEVER))
register(Method("system_prompt", EVALUATION, "System-prompt defence",
                "the in-context defence: a refusal instruction prepended to every prompt (with an edit run, the "
                "edit is applied too)", in_report=True, system_prompt=True))
register(Method(LEARNED, EDIT, "Neural Gate",
                "gated fine-tuning of down_proj on the learned privacy neurons", learned_gate,
                choice_title="Neural Gate — gradients gated to the privacy neurons", needs_masks=True,
                gate_title="learned", in_report=True))
register(Method("inference_gate", EVALUATION, "Inference-time gate (no edit)",
                "the run's learned privacy neurons gated at the subject token at inference time, no weight edit "
                "(needs a run with masks)", needs_masks=True, in_report=True, takes_gates=NEEDS))
register(Method("ft", EDIT, "Fine-tuning, no gate",
                "fine-tuning without the gate (Neural Gate minus gating), same loss, data and steps", every_row,
                choice_title="Fine-tuning baseline — no gate (every row of down_proj)", gated=False,
                in_report=True))
register(Method(RANDOM_CONTROL, EDIT, "Random gate (same size)",
                "a random set of neurons of the same size as the learned mask", random_gate,
                choice_title="Random gate — as many random neurons (control)", needs_masks=True, control=True,
                gate_title="random", in_report=True))
register(Method("complement_gate", EDIT, "Complement gate", "the complement of the learned mask", complement_gate,
                choice_title="Complement gate — every neuron except the privacy ones (control)", needs_masks=True,
                control=True, gate_title="complement", in_report=True))
register(Method("edited", EVALUATION, "Edited", "the run's weight edit, whatever its method", takes_deltas=NEEDS))
register(Method("mask", SCORE, "Learned mask (Neural Gate Stages A+B)",
                "Learns a gate tanh(m) per neuron at the subject token that makes the model refuse while keeping "
                "benign answers; neurons whose gate flips are privacy neurons. The faithful method; the slowest.",
                score=mask_score, learned=True, long_after_layers=2,
                score_label="privacy score, mean 1 − tanh(m) (0 = kept, 2 = flipped)",
                freq_label="share of images where the neuron is flagged"))
register(Method("gradxact", SCORE, "Gradient × activation",
                "One backward pass per prompt: activation × gradient of (refusal − original answer) log-likelihood "
                "at the subject token. Equals the mask's first step; cheap.", score=gradxact_score, min_pairs=1,
                long_after_layers=4, score_label="gradient × activation, privacy − benign",
                freq_label="share of privacy prompts with positive attribution"))
register(Method("contrast", SCORE, "Activation contrast",
                "One forward pass per prompt: how much more a neuron fires on privacy questions than on benign "
                "questions about the same image (paired Cohen's d). Cheapest.", score=contrast_score, min_pairs=2,
                score_label="activation contrast, paired Cohen's d (privacy − benign)"))

#: Where Stage C's gradient gate acts (``EditConfig.gate_scope``).
GATE_SCOPES: dict[str, str] = {
    "subject_position": "As in the authors' code: only the subject token's gradient is gated; every other "
                        "position still updates all rows of down_proj, so the gate has little effect.",
    "all_positions": "Non-privacy dims are blocked at every position: only the gated rows of down_proj change, "
                     "and the edit can act on any token of a privacy question.",
    "weight_rows": "The paper's wording: the weight gradient is row-masked, so rows outside the mask change by "
                   "exactly zero (same rows as all_positions, computed on the parameter).",
}
