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
