"""Time gate toggles on the presenter's path: the guided demo's privacy neurons, then the Gates page.

Why: after the demo a presenter opens *Gates*, keeps the whole mask and moves the strength slider, at the subject
token and at every position. Each move is a new gate set, so the gated answer is regenerated (the base answer is
memoised, as on the page). The target is 1.5 s per toggle on 2 cores for both scopes (issue 31). This walks the
same core calls as the page (``set_gates`` then ``compare``) with the demo's own localization (its preset, layer and
records) and the demo's sample card and question.

    OMP_NUM_THREADS=2 .venv/bin/python bench/gate_toggle_time.py --model ng-mini-llava --repeats 7

A toggle costs the prompt start (rerun from the gate's layer at every position, reused whole at the subject
token), the question, and the new answer's tokens: the previous answer serves as a draft, so an answer that stays
the same costs one pass, while one the gate garbles is decoded token by token (the median answer length is printed),
so the answer's length bounds a toggle: ``--max-new-tokens`` (default 16, the Gates page's default answer length;
the page offers 16, 32 and 64; the runs in BENCHMARKS.md before that default used 32).
``--against-no-reuse`` toggles a second session that keeps no prompt start, in turn with the first, so both share
the machine's load; their answers must be the same.

``--quick`` trains the mask for one step only (the neurons then mean little; the toggle's cost barely depends on
them, but whether the answer changes does).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see streamlit_app.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ng_core.studio import (GATE_ANSWER_TOKENS, StudioSession, demo_preset, demo_question,  # noqa: E402
                            demo_records, load_model_job, neuron_view, sample_dataset)


def toggles(sessions: list, sel: dict, where: str, repeats: int, offset: float, n_tok: int) -> list[dict]:
    """``repeats`` new strengths (never seen before in a session) at ``where``; seconds per toggle, for each
    session in turn at each strength (so a comparison shares the machine's load)."""
    secs, texts, tokens = [[] for _ in sessions], [[] for _ in sessions], [[] for _ in sessions]
    for s in sessions:
        s.base_answer(max_new_tokens=n_tok)  # memoised once, as on the page
    for i in range(repeats):
        scale = round(offset + 0.05 * i, 3)
        for j, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.set_gates(s.make_gates(sel, scale, where, "residual", label="gate"))
            _, gated = s.compare(max_new_tokens=n_tok)
            secs[j].append(time.perf_counter() - t0)
            texts[j].append(gated.text)
            tokens[j].append(len(s.adapter.tokenizer(gated.text, add_special_tokens=False)["input_ids"]))
    return [{"median": statistics.median(x), "max": max(x), "min": min(x), "n": len(x), "seconds": x, "answers": t,
             "answer_tokens": k} for x, t, k in zip(secs, texts, tokens)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--category", default="passport")
    ap.add_argument("--data", default=".ng-cache/sample-data-12", help="the dashboard's sample dataset")
    ap.add_argument("--per-category", type=int, default=12, help="cards per category when --data is generated")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="one mask step (faster set-up)")
    ap.add_argument("--from-strength", type=float, default=0.0, help="the first strength tried (then +0.05 a "
                    "toggle); the demo's neurons garble the answer at every position below about 0.3")
    ap.add_argument("--max-new-tokens", type=int, default=GATE_ANSWER_TOKENS, help="new tokens per answer (the "
                    f"Gates page's answer length; default {GATE_ANSWER_TOKENS}, the page's default)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--against-no-reuse", action="store_true", help="also time a session that keeps no prompt "
                    "start between toggles (the code before the prompt start was reused), toggle by toggle")
    args = ap.parse_args(argv)
    job = load_model_job(args.model)
    assert job.wait(1800) and job.status == "done", job.error_message()
    s = StudioSession(job.result, runs_dir=tempfile.mkdtemp(), stale_after=None)  # no page polls here
    p = demo_preset(s.adapter.model_id, s.adapter.n_layers)
    if args.quick:
        p.mask.steps = 1
    ds = sample_dataset(args.data, per_category=args.per_category)
    layer = int(p.layer)
    loc = s.start_localize(demo_records(ds, args.category, p.demo["images"]), [layer], p.mask,
                           with_edit=False)
    assert loc.wait(1800) and loc.status == "done", loc.error_message()
    view = neuron_view(s.localization, category=args.category)
    sel = view.selection() if int(view.selected.sum()) else view.top_per_layer(p.demo["gate_top"])
    card = (ds.records(args.category, "heldout_images") or ds.records(args.category, "train"))[0]
    sessions = [s]
    if args.against_no_reuse:
        ref = StudioSession(s.adapter, runs_dir=tempfile.mkdtemp(), stale_after=None)
        ref.shared.prefix_memo.size = 0  # keeps no prompt start
        sessions.append(ref)
    for x in sessions:
        x.set_image(card.image, name="sample", private=False)
        x.set_prompt(demo_question(card), card.subject)
    import torch

    out = {"model": args.model, "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
           "load_average": os.getloadavg(), "layer": layer, "neurons": sum(map(len, sel.values())),
           "question": s.prompt, "base_answer": s.base_answer(max_new_tokens=args.max_new_tokens).text}
    for where, offset in (("subject", args.from_strength), ("all", args.from_strength + 0.025)):  # kept apart
        res = toggles(sessions, sel, where, args.repeats, offset, args.max_new_tokens)
        out[where] = res[0]
        print(f"{where:8s} median {res[0]['median']:.2f} s, max {res[0]['max']:.2f} s, answers of "
              f"{statistics.median(res[0]['answer_tokens']):g} tokens (median)", flush=True)
        if len(res) > 1:
            out[where + "_no_reuse"] = res[1]
            out[where + "_same_answers"] = res[0]["answers"] == res[1]["answers"]
            print(f"{'':8s} no reuse: median {res[1]['median']:.2f} s, max {res[1]['max']:.2f} s; same answers: "
                  f"{out[where + '_same_answers']}", flush=True)
    out["prefix_memo"] = {"hits": s.shared.prefix_memo.hits, "partial": s.shared.prefix_memo.partial,
                          "misses": s.shared.prefix_memo.misses}
    out["load_average_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in out.items() if not isinstance(v, dict) or k == "prefix_memo"}, indent=1))
    for where in ("subject", "all"):
        print(where, [round(x, 2) for x in out[where]["seconds"]], out[where]["answers"][:3])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
