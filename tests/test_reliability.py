"""Reliability: bad inputs, malformed bundles, escaping paths and faults all end in a clear error or a
correct result; never a traceback, a hang, a silently wrong result or a lost run.

The cases live in ``reliability_inputs.py`` and ``reliability_files.py``; ``python bench/reliability_table.py``
counts their outcomes for the README.
"""
from __future__ import annotations

import pytest

from reliability_cases import all_cases
from reliability_core import Ctx, classify

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CASES = all_cases()


@pytest.fixture(scope="module")
def ctx():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    c = Ctx()
    yield c
    c.close()
    torch.set_num_threads(n)


def test_enough_cases():
    assert len(CASES) >= 300 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, ctx):
    outcome, detail = classify(case, ctx)
    assert outcome in ("clear", "ok"), f"{case.id}: {outcome}: {detail}"
