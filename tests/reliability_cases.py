"""Every case of the reliability suite (``tests/test_reliability.py``, ``bench/reliability_table.py``)."""
from __future__ import annotations

import reliability_files
import reliability_inputs
import reliability_interrupts
import reliability_leftovers


def all_cases():
    return (reliability_inputs.all_cases() + reliability_files.all_cases() + reliability_leftovers.all_cases()
            + reliability_interrupts.all_cases())
