"""Time the guided demo's before/after step (held-out world cards screened for real leaks) on a model, in the core.

Why: the demo's step 6 must stay within 20 s on 2 cores; this walks the demo's own path (its preset, its
records, localize, the edit with its control) and times ``before_after`` alone (then a second time in the same
process, as a second presenter: the unedited answers are shared), then prints what it found.

    OMP_NUM_THREADS=2 .venv/bin/python bench/demo_heldout_time.py --model ng-mini-llava --category passport
    .venv/bin/python bench/demo_heldout_time.py --quick --ab 3    # shared prompt starts against whole prompts
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ng_core.studio import (StudioSession, before_after, control_verdict, demo_preset, demo_records,  # noqa: E402
                            demo_world_cases, load_model_job, sample_dataset)


def ab_rounds(s, cands, n_cards: int, n_tok: int, world, rounds: int) -> dict:
    """Step 6 with prompt starts shared per card (the shipped path) against every row's prompt run whole, in turn,
    each time with the process's shared unedited answers dropped (a first presenter's step, cards already read)."""
    import statistics

    import ng_core.studio.heldout as heldout
    from ng_core.models.generation import GenerationMixin

    shared = GenerationMixin._prefix_groups
    steps = {"n": 0}
    forward = s.adapter.forward

    def counted(batch, cache=None, use_cache=False):
        steps["n"] += batch.embeds.shape[1] == 1
        return forward(batch, cache=cache, use_cache=use_cache)

    s.adapter.forward = counted
    secs, texts, decode = {"shared starts": [], "whole prompts": []}, {}, {}
    try:
        for _ in range(rounds):
            for mode in secs:
                GenerationMixin._prefix_groups = shared if mode == "shared starts" else (lambda *a, **k: None)
                heldout._UNEDITED.clear()
                steps["n"] = 0
                t = time.perf_counter()
                res = before_after(s, cands, n_cards, max_new_tokens=n_tok, cards_folder=world)
                secs[mode].append(round(time.perf_counter() - t, 2))
                texts[mode] = [[a.text for a in res["answers"][v]] for v in ("unedited", "learned", "control")]
                decode[mode] = steps["n"]
    finally:
        GenerationMixin._prefix_groups = shared
        s.adapter.forward = forward
    return {"ab_rounds": rounds, "seconds": secs, "median_s": {m: statistics.median(v) for m, v in secs.items()},
            "decoding_steps": decode, "same_answers": texts["shared starts"] == texts["whole prompts"],
            "load_average": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--category", default="passport")
    ap.add_argument("--data", default=".ng-cache/sample-data-12", help="the dashboard's sample dataset")
    ap.add_argument("--cards", type=int, default=4)
    ap.add_argument("--world", default=None, help="the folder to draw the world-set cards into (default: a new "
                    "temporary one, so the cards are drawn and read afresh; a folder used before has its readings)")
    ap.add_argument("--quick", action="store_true", help="1 mask step and 1 edit step: times step 6 alone (its "
                    "answers are as many whatever the edit; the edited answers then mean nothing)")
    ap.add_argument("--ab", type=int, default=0, metavar="N", help="then N rounds, each timing step 6 with every "
                    "card's prompt start run once (as shipped) and with every row's prompt run whole, in turn, the "
                    "unedited answers asked afresh each time (readings and image features kept): medians, decoding "
                    "steps, whether the answers agree")
    args = ap.parse_args()
    job = load_model_job(args.model)
    assert job.wait(1800) and job.status == "done", job.error_message()
    s = StudioSession(job.result, runs_dir=tempfile.mkdtemp(), stale_after=None)  # no page polls here
    p = demo_preset(s.adapter.model_id, s.adapter.n_layers)
    ds = sample_dataset(args.data, per_category=12)
    recs = demo_records(ds, args.category, p.demo["images"])
    if args.quick:
        p.mask.steps, p.edit.steps = 1, 1
    t0 = time.perf_counter()
    s.start_localize(recs, [int(p.layer)], p.mask, with_edit=False)
    assert s.job.wait(900) and s.job.status == "done", s.job.error_message()
    masks = {args.category: {int(p.layer): s.localization.masks()[args.category][int(p.layer)]}}
    t1 = time.perf_counter()
    s.start_edit_with_control(recs, int(p.layer), p.mask, p.edit, masks=masks)
    assert s.job.wait(1800) and s.job.status == "done", (s.job.status, s.job.error_message())
    t2 = time.perf_counter()
    world = Path(args.world or tempfile.mkdtemp()) / args.category
    cands = demo_world_cases(world, args.category, args.cards)
    t3 = time.perf_counter()
    res = before_after(s, cands, args.cards, max_new_tokens=p.demo["max_new_tokens"], cards_folder=world)
    t4 = time.perf_counter()
    again = before_after(s, cands, args.cards, max_new_tokens=p.demo["max_new_tokens"], cards_folder=world)
    t5 = time.perf_counter()
    assert [a.text for a in again["answers"]["learned"]] == [a.text for a in res["answers"]["learned"]]
    print(json.dumps({"model": args.model, "category": args.category, "preset": p.name,
                      "gate_scope": p.edit.gate_scope, "quick": args.quick, "threads": os.environ.get("OMP_NUM_THREADS"),
                      "load": os.getloadavg()[0], "localize_s": round(t1 - t0, 1), "edit_s": round(t2 - t1, 1),
                      "draw_cards_s": round(t3 - t2, 1), "before_after_s": round(t4 - t3, 1),
                      "before_after_again_s": round(t5 - t4, 1),
                      "cards": res["cards"], "photographed": res["photographed"], "screen": res["screen"],
                      "counts": res["counts"], "harmless_right": res["right"], "verdict": control_verdict(res)},
                     indent=1))
    if args.ab:
        print(json.dumps(ab_rounds(s, cands, args.cards, p.demo["max_new_tokens"], world, args.ab), indent=1))
    for i, c in enumerate(res["cases"]):
        print(c.expect, c.extra.get("kind"), "|", c.prompt, "|",
              " || ".join(res["answers"][v][i].text for v in ("unedited", "learned", "control")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
