"""Gate toggles with and without the draft (the previous answer to the same input).

A session answers one image and prompt, then toggles a growing gate (top 8, 16, ... dims of the
preset layer, scaled 0.5 at every position) and regenerates after each toggle, once drafting from the
previous answer (the default) and once with the drafts dropped. Both give the same answers.

    python bench/bench_draft_decoding.py --model ng-mini-llava --data DATA --category passport
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", default="passport")
    ap.add_argument("--prompt", default="Describe the passport in this image in detail.")
    ap.add_argument("--toggles", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from ng_core.data import load_dataset
    from ng_core.method.interventions import Gate
    from ng_core.models import load_model
    from ng_core.method.presets import load_preset
    from ng_core.studio import StudioSession

    torch.set_num_threads(args.threads)
    a = load_model(args.model)
    layer = load_preset(a.model_id, a.n_layers)["layer"]
    img = load_dataset(args.data).images(args.category)[0]
    answers, rows = {}, []
    for mode in ("draft", "no draft"):
        s = StudioSession(a, runs_dir=os.devnull, max_new_tokens=args.max_new_tokens)
        s.set_image(img, private=False)
        s.set_prompt(args.prompt)
        s.ask(memo=False)
        times, toks, texts = [], [], []
        for k in range(1, args.toggles + 1):
            s.set_gates([Gate(layer, torch.arange(k * 8), 0.5, "all")])
            if mode == "no draft":
                s.shared.drafts.clear()
            t = time.perf_counter()
            ans = s.ask(memo=False)
            times.append(time.perf_counter() - t)
            toks.append(len(a.tokenizer(ans.text)["input_ids"]))
            texts.append(ans.text)
        answers[mode] = texts
        rows.append((mode, statistics.median(times), max(times), statistics.median(toks)))
    same = answers["draft"] == answers["no draft"]
    print(f"model {a.model_id}, layer {layer}, {args.toggles} toggles, {torch.get_num_threads()} threads; "
          f"identical answers: {same}")
    print("| decoding | median s | max s | median answer tokens |\n|---|---|---|---|")
    for mode, med, mx, nt in rows:
        print(f"| {mode} | {med:.2f} | {mx:.2f} | {nt:.0f} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
