"""The dashboard's typed API (StudioSession), the demo story and the shareable HTML report.

Import from here (``from ng_core.studio import StudioSession``); the modules say where each part lives:
``session`` (the class), ``inputs``, ``answers``, ``gates``, ``edits``, ``neurons``, ``evaluation``,
``runs``, ``jobs`` (its concerns), ``story`` (the state in words), ``heldout`` (the demo's before/after set and
the control's verdict), ``private_values`` (what is private on a card the generator did not draw), ``tabs``
(sessions found again after a reload), ``html_report``, ``presets`` (typed presets), ``verdicts`` (an answer's
verdict as the pages show it), ``state`` (what the concerns share) and ``vocabulary`` (names and records the pages
show). The method records and gate scopes come from
:mod:`ng_core.method.registry`, re-exported here for the dashboard.
"""
from ng_core.method.registry import (BASELINE, EDIT, EVALUATION, GATE_SCOPES, SCORE, Method, find_method, get_method,
                                     methods, sweep_gates, with_control)
from ng_core.studio.answers import (CURRENT, Answer, Interventions, answer_counts, behaviour_rates, guess_subject,
                                    judge_available, judge_text)
from ng_core.studio.edits import EditPair
from ng_core.studio.gates import GATE_ANSWER_CHOICES, GATE_ANSWER_TOKENS
from ng_core.studio.heldout import before_after, control_verdict, demo_world_cases, preparing_job
from ng_core.studio.html_report import answer_entry, render_html, run_story, session_story, write_html
from ng_core.studio.inputs import PrivateImage, record_from_inputs, sample_dataset
from ng_core.studio.jobs import DEFAULT_STALE_AFTER, Job, load_model_job, must_assemble
from ng_core.studio.neurons import NeuronView, neuron_view, run_categories, run_method, run_units
from ng_core.studio.preset_evidence import measured_lines
from ng_core.studio.private_values import still_leaks, typed_values, unusable_values, value_choices
from ng_core.studio.presets import DemoPreset, Preset
from ng_core.studio.session import ModelFacts, StudioSession
from ng_core.studio.verdicts import Verdict, counts_label, has_usable_secrets, leak_parts, verdict_of
from ng_core.studio.story import (demo_differences, demo_preset, demo_question, demo_records, heldout_cases,
                                  question_words, scope_words, stage_bars, state_rows, state_summary, with_demo_budget)

__all__ = ["Answer", "BASELINE", "CURRENT", "DEFAULT_STALE_AFTER", "DemoPreset", "EDIT", "EVALUATION", "EditPair",
           "GATE_ANSWER_CHOICES", "GATE_ANSWER_TOKENS", "GATE_SCOPES", "Interventions", "Job", "Method", "ModelFacts",
           "NeuronView", "Preset", "PrivateImage", "SCORE", "StudioSession", "Verdict", "answer_counts", "answer_entry",
           "before_after", "behaviour_rates", "control_verdict", "counts_label", "demo_differences", "demo_preset",
           "demo_question", "demo_records", "demo_world_cases", "preparing_job", "find_method", "get_method", "guess_subject",
           "has_usable_secrets", "heldout_cases", "judge_available", "judge_text", "leak_parts", "load_model_job",
           "measured_lines", "methods", "must_assemble", "neuron_view", "question_words", "record_from_inputs",
           "render_html", "run_categories", "run_method", "run_story", "run_units", "sample_dataset", "scope_words",
           "session_story", "stage_bars", "state_rows", "state_summary", "still_leaks", "sweep_gates",
           "typed_values", "unusable_values", "value_choices", "verdict_of", "with_control", "with_demo_budget",
           "write_html"]
