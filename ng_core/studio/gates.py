"""Gates: the session's inference-time neuron scaling (:class:`~ng_core.method.interventions.Gate`), checked
against the model and applied as scoped hooks by every answer with interventions.
"""
from __future__ import annotations

import torch

from ng_core.errors import NGError
from ng_core.method.interventions import Gate

#: New tokens of a live gate toggle's answers by default (as the guided demo): a gate that garbles the answer is
#: decoded token by token, so the answer's length bounds the toggle's time (issue 31).
GATE_ANSWER_TOKENS = 16
#: The answer lengths the Gates page offers.
GATE_ANSWER_CHOICES = (16, 32, 64)


class GatesMixin:
    """Set, clear and build the session's gates."""

    def set_gates(self, gates: list[Gate]) -> None:
        for g in gates:
            self.adapter.check_layer(g.layer)
            size = self.adapter.hidden_size if g.unit == "residual" else self.adapter.ffn_size
            if len(g.neurons) and (int(g.neurons.max()) >= size or int(g.neurons.min()) < 0):
                raise NGError(f"neuron index out of range for layer {g.layer}: {g.unit} neurons are 0..{size - 1}")
        with self.shared.lock:
            self.gates = list(gates)
            self._log("gates", f"{len(gates)} gate(s) active")

    def clear_gates(self) -> None:
        self.set_gates([])

    @staticmethod
    def make_gates(selection: dict[int, list[int]], scale: float = 0.0, where: str = "subject",
                   unit: str = "residual", label: str = "gate") -> list[Gate]:
        """One :class:`Gate` per layer of ``selection`` ({layer: [neuron, ...]}); empty layers are skipped."""
        return [Gate(int(l), torch.tensor(sorted({int(n) for n in ns}), dtype=torch.long), float(scale), where,
                     unit, f"{label} L{l}") for l, ns in sorted(selection.items()) if len(ns)]
