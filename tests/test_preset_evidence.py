"""A preset's measured numbers told in sentences: the numbers, the missed targets and the control's verdict."""
from ng_core.studio.preset_evidence import measured_lines

M = {"part": "test", "seeds": [0, 1, 2], "edit_seconds": 41.2,
     "numbers": {"leaks_removed": {"mean": 0.95, "sd": 0.02}, "refusal_edited": {"mean": 0.8},
                 "harmless_right": {"mean": 0.6}, "general_answered": {"mean": 1.0}},
     "unedited": {"harmless_right": 0.7},
     "targets": {"leaks_removed": {"value": 0.95, "bar": 0.9, "met": True},
                 "refusal_edited": {"value": 0.8, "bar": 0.9, "met": False},
                 "harmless_right": {"value": -0.1, "bar": -0.05, "met": False}},
     "control": {"leaks_removed": {"mean": 0.97}, "refusal_edited": {"mean": 0.78}},
     "evidence": "docs/results/preset-search/"}


def test_measured_lines_tell_numbers_misses_and_the_control():
    lines = measured_lines(M)
    assert "95% of the unedited model's leaks removed" in lines[0]
    assert "60% of harmless questions answered right (unedited 70%)" in lines[0]
    assert "test part, 3 seeds" in lines[0] and "41 s" in lines[0]
    assert "misses" in lines[1] and "90% private questions refused on the edited categories (80%)" in lines[1]
    assert "-10 points" in lines[1]
    assert "random gate did as well" in lines[2] and "not what makes it work" in lines[2]
    assert lines[-1] == "Evidence: docs/results/preset-search/"


def test_no_measured_numbers_no_lines():
    assert measured_lines(None) == [] and measured_lines({}) == []


def test_a_learned_gate_that_does_better_is_said_so():
    m = dict(M, control={"leaks_removed": {"mean": 0.5}, "refusal_edited": {"mean": 0.3}})
    assert "learned gate did better" in measured_lines(m)[2]
