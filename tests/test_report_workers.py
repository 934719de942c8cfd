"""Two `ng report` workers on one workdir: the dataset is generated once, never by both at the same time."""
from __future__ import annotations

import threading

from ng_core.evaluation.report_config import ReportConfig
from ng_core.evaluation.report_runner import prepare_dataset


def test_two_workers_share_one_dataset(tmp_path):
    cfg = ReportConfig(model="tiny-random", per_category=1)
    logs, errors, out = [], [], []

    def worker():
        try:
            out.append(prepare_dataset(cfg, tmp_path, logs.append))
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(out) == 2 and sum("generating the dataset" in m for m in logs) == 1
    assert out[0].categories == out[1].categories


def test_two_workers_compute_each_evaluation_once(tmp_path):
    """Both workers start with the unedited model: the second waits for the first's result and reuses it."""
    from ng_core.evaluation.report_runner import Collaborators, run_report
    from ng_core.models import load_model

    # one model for both threads (two processes each load the same weights; two threads building a random
    # model at once would interleave torch's global RNG and get two different models)
    tiny = load_model("tiny-random")
    shared = Collaborators(load_model=lambda *a, **k: tiny)
    logs, errors = [], []

    def worker(order):
        cfg = ReportConfig(model="tiny-random", per_category=1, categories=("passport",), order=order,
                           methods=("unedited", "system_prompt"), max_new_tokens=2, images_per_cell=1,
                           general=False, workdir=str(tmp_path / "work"), out=str(tmp_path / f"{order}.md"))
        try:
            run_report(cfg, log=logs.append, collaborators=shared)
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(o,)) for o in ("forward", "reverse")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    assert sum(m.startswith("[unedited] evaluating") for m in logs) == 1, "\n".join(logs)
    assert sum(m.startswith("[unedited] reusing") for m in logs) == 1, "\n".join(logs)
