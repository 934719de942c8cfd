"""Every method and gate scope the project knows, named once, with one line each.

The CLI's choices, the report's method order, the sweep's gates, evaluation's checks and the dashboard's
lists all read these, so adding a method or a scope is one entry here (and its code).
"""
from __future__ import annotations

#: Weight-edit methods (``ng edit --method``) and what each isolates.
EDIT_METHODS: dict[str, str] = {
    "neural_gate": "Neural Gate: gated fine-tuning of down_proj on the learned privacy neurons",
    "ft": "fine-tuning without the gate (Neural Gate minus gating), same loss, data and steps",
    "random_gate": "a random set of neurons of the same size as the learned mask",
    "complement_gate": "the complement of the learned mask",
}

#: The edits made through a gate: the learned one and its two controls (``ng sweep`` compares them).
GATE_METHODS: tuple[str, ...] = ("neural_gate", "random_gate", "complement_gate")
GATE_TITLES: dict[str, str] = {"neural_gate": "learned", "random_gate": "random", "complement_gate": "complement"}

#: Where Stage C's gradient gate acts (``EditConfig.gate_scope``).
GATE_SCOPES: dict[str, str] = {
    "subject_position": "As in the authors' code: only the subject token's gradient is gated; every other "
                        "position still updates all rows of down_proj, so the gate has little effect.",
    "all_positions": "Non-privacy dims are blocked at every position: only the gated rows of down_proj change, "
                     "and the edit can act on any token of a privacy question.",
    "weight_rows": "The paper's wording: the weight gradient is row-masked, so rows outside the mask change by "
                   "exactly zero (same rows as all_positions, computed on the parameter).",
}

#: Evaluation methods that need no weight edit (``ng evaluate --method``).
EVAL_METHODS: dict[str, str] = {
    "unedited": "the model as it is (no edit, no gate)",
    "system_prompt": "the in-context defence: a refusal instruction prepended to every prompt",
    "inference_gate": "the run's learned privacy neurons gated at the subject token at inference time, no weight edit",
    "edited": "the run's weight edit (its method: neural_gate, ft, random_gate or complement_gate)",
}

#: The methods ``ng report`` compares, in the order of its tables.
REPORT_METHODS: tuple[str, ...] = ("unedited", "system_prompt", "neural_gate", "inference_gate", "ft",
                                   "random_gate", "complement_gate")

#: Per-neuron privacy scores (``ng scores --method``).
SCORE_METHODS: tuple[str, ...] = ("contrast", "gradxact", "mask")
