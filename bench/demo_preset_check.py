"""Variants of the guided demo's edit, through the app's own path, judged on validation cards.

Why: the demo preset (`ng_core/method/presets/demo.ng-mini-llava.json`) is a speed setting; its choice must name
measured evidence. For each variant this runs what the demo's buttons run (``StudioSession.start_localize`` then
``start_edit_with_control`` on the demo's training cards) and answers held-out cards of a *validation* dataset
(another seed, not the sample dataset whose cards the demo shows) unedited, with the learned edit and with its
random-gate control: leaks (the card's true value in the answer), refusals, benign answers, and the edit's time.

    ng data generate --out /tmp/val7 --seed 7 --per-category 24 --categories passport receipt
    .venv/bin/python bench/demo_preset_check.py --val /tmp/val7 --category passport --variants q1,q2
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (streamlit_app.py)

# Over the shipped demo preset: questions per image; and, at 1 question, a gentler edit (lower lr, fewer steps, a
# heavier neighbour term), for when the edit refuses harmless questions too.
VARIANTS = {"q1": {"questions_per_image": 1}, "q2": {"questions_per_image": 2},
            "q1_lr2e-3": {"questions_per_image": 1, "lr": 0.002},
            "q1_lr1e-3": {"questions_per_image": 1, "lr": 0.001},
            "q1_steps4": {"questions_per_image": 1, "steps": 4},
            "q1_steps7": {"questions_per_image": 1, "steps": 7},
            "q1_kl2.5": {"questions_per_image": 1, "kl_factor": 2.5},
            "q2_steps7": {"questions_per_image": 2, "steps": 7}}


def run_variant(adapter, P, ds, val, cat: str, n: int, name: str, tmp: Path) -> dict:
    from ng_core.studio import StudioSession, answer_counts, demo_records, heldout_cases

    s = StudioSession(adapter, runs_dir=tmp)
    L = P.layer
    recs = demo_records(ds, cat, P.demo["images"])

    def wait(job):
        while not job.wait(5):
            job.heartbeat()  # as the page does while it watches a job
        if job.status != "done":
            raise RuntimeError(f"{name}: {job.kind} {job.status}: {job.error_message()}")
        return job.result

    t = time.perf_counter()
    loc = wait(s.start_localize(recs, [L], P.mask, with_edit=False))
    t_loc = time.perf_counter() - t
    masks = {cat: {L: loc.masks()[cat][L]}}
    t = time.perf_counter()
    wait(s.start_edit_with_control(recs, L, P.mask, replace(P.edit, **VARIANTS[name]), masks=masks))
    t_edit = time.perf_counter() - t
    cases = heldout_cases(val, [cat], n)
    res = s.pair_batch(cases, max_new_tokens=P.demo["max_new_tokens"])
    return {"variant": name, "edit": {**P.edit.to_dict(), **VARIANTS[name]}, "edit_s": round(t_edit, 1),
            "localize_s": round(t_loc, 1), "cases": len(cases),
            "rates": {v: {k: r[k] for k in ("refusal_rate", "benign_answer_rate")} for v, r in res["rates"].items()},
            "counts": {v: answer_counts(cases, a) for v, a in res["answers"].items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--val", required=True, help="validation dataset (another seed than the app's sample dataset)")
    p.add_argument("--samples", default=None, help="the demo's dataset (default: a fresh sample dataset, as the app's)")
    p.add_argument("--category", default="passport")
    p.add_argument("--per-kind", type=int, default=8, help="held-out privacy and benign cases each")
    p.add_argument("--variants", default="q1,q2", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="append one JSON line per variant here")
    a = p.parse_args(argv)
    import tempfile

    import torch

    from ng_core.data import load_dataset
    from ng_core.models import load_model
    from ng_core.studio import demo_preset, sample_dataset

    torch.set_num_threads(a.threads)
    adapter = load_model("ng-mini-llava")
    P = demo_preset(adapter.model_id, adapter.n_layers)
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_dataset(a.samples) if a.samples else sample_dataset(Path(tmp) / "samples", per_category=12)
        val = load_dataset(a.val)
        for name in a.variants.split(","):
            if name not in VARIANTS:
                p.error(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
            rec = run_variant(adapter, P, ds, val, a.category, a.per_kind, name, Path(tmp))
            rec.update(category=a.category, load_average=[round(x, 2) for x in os.getloadavg()])
            print(json.dumps(rec), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
