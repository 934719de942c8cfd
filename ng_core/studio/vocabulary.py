"""The names, titles and record types the pages show, re-exported from the layers that own them.

The dashboard imports only :mod:`ng_core.studio` (and :mod:`ng_core.errors`); what it needs to name things
(categories and their titles, splits, gate scopes), the records it builds (an evaluation case, a score
configuration), the run bundles it opens, the reading block it shows and the sweeps it draws come through here,
so the layers below can move without the UI noticing.
"""
from __future__ import annotations

from ng_core.data import CATEGORIES, CATEGORY_TITLES, SPLIT_DESCRIPTIONS
from ng_core.data.records import EvalCase
from ng_core.evaluation.sweep import find_sweeps, load_sweep
from ng_core.evaluation.sweep_grid import SweepError
from ng_core.evaluation.sweep_numbers import METRICS as SWEEP_METRICS
from ng_core.evaluation.sweep_render import consistency_rows, curve_points, learned_vs_random_rows
from ng_core.evaluation.tradeoff import default_values
from ng_core.method.bundle import Run
from ng_core.method.registry import GATE_SCOPES
from ng_core.method.scores import ScoreConfig
from ng_core.models.reading import block_colour, block_lines

__all__ = ["CATEGORIES", "CATEGORY_TITLES", "EvalCase", "GATE_SCOPES", "Run", "SPLIT_DESCRIPTIONS", "SWEEP_METRICS",
           "ScoreConfig", "SweepError", "block_colour", "block_lines", "consistency_rows", "curve_points",
           "default_values", "find_sweeps", "learned_vs_random_rows", "load_sweep"]
