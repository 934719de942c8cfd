"""Shared fixtures: tiny random LLaVA models built offline in seconds, and small image records."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# idle OpenMP threads must not spin: on a busy 2-core machine spinning makes small ops many times slower
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import make_records  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Small ops on a shared CPU: one intra-op thread avoids OpenMP spin contention (restored after).

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny():
    """The tiny-random adapter (fp32, byte-level tokenizer). Shared: tests must not mutate it."""
    from ng_core.models import load_model

    return load_model("tiny-random")


@pytest.fixture(scope="session")
def tiny64():
    """The same model in float64, for exact schedule comparisons."""
    from ng_core.models import load_model

    a = load_model("tiny-random")
    a.model.double()
    return a


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(4):
        img = Image.new("RGB", (48, 40), (40 * i, 120, 200 - 30 * i))
        img.putpixel((i, i), (255, 255, 255))
        img.save(d / f"img{i}.png")
    return d


@pytest.fixture
def records(image_dir):
    return make_records(image_dir)


def first_rows(selected, seed: int = 0):
    """A toy gate: as many rows as the learned mask selects, the first ones."""
    out = torch.zeros(selected.numel(), dtype=torch.bool)
    out[: int(selected.sum())] = True
    return out


@pytest.fixture
def toy_method():
    """A weight-edit method registered for one test only (always removed after it, even when the test fails):
    what reads the method records must see it without being told."""
    from ng_core.method.registry import EDIT, Method, registered

    toy = Method("first_rows", EDIT, "First rows (toy)", "as many rows as the learned mask, the first ones",
                 first_rows, choice_title="First rows — a toy gate of the tests", needs_masks=True, control=True,
                 in_report=True)
    with registered(toy) as m:
        yield m
