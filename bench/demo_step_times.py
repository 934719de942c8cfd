"""The guided demo's step times on a model, in Chromium: what BENCHMARKS.md's demo table reports.

Why: the demo promises its steps on a small CPU (the edit with its control ≤ 90 s, before/after ≤ 20 s, the whole
demo ≤ 5 min). This starts ``streamlit run`` as a user does and clicks through the landing page with the browser
test's own walk (``tests/test_browser.py``: card, unedited answer, privacy neurons, gates, edit with its random
control, before/after on held-out cards, report), without screenshots. Each presenter is a new browser session on
the same server: the first pays for the model load and for the unedited answers step 6 shares between sessions,
the next ones show what a later presenter waits for.

    .venv/bin/python bench/demo_step_times.py --model ng-mini-llava --presenters 2 --json /tmp/demo-steps.json

Take the numbers on a quiet machine (nothing else running): the script prints the load average at the start and
the end of each presenter. Needs /usr/bin/chromium and playwright.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TARGETS = {"edit": 90.0, "before / after": 20.0, "whole demo": 300.0}


def browser_walks():
    """``tests/test_browser.py`` as a module (its server, browser and walk helpers)."""
    spec = importlib.util.spec_from_file_location("ng_browser_walks", ROOT / "tests" / "test_browser.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ng-mini-llava")
    ap.add_argument("--presenters", type=int, default=2, help="walks, one new browser session each, one server")
    ap.add_argument("--job-wait", type=int, default=1200, help="seconds a job step may take before it fails")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--world", default=None, help="the world-set folder step 6 draws its held-out cards into "
                    "(NG_WORLD_DIR); default: a new one, so the first presenter draws and reads them. Give the "
                    "folder of an earlier run to time a server started again on the same machine")
    ap.add_argument("--think", type=float, default=0.0, help="seconds the presenter pauses after each step, as "
                    "when talking through it (not counted in the steps; counted in the whole demo). Default 0: "
                    "every click comes as soon as the page is ready")
    args = ap.parse_args(argv)
    if not Path("/usr/bin/chromium").exists():
        print("needs /usr/bin/chromium (see the README's browser tests)", file=sys.stderr)
        return 2
    bw = browser_walks()
    import torch

    out = {"model": args.model, "date": time.strftime("%Y-%m-%d %H:%M"), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
           "code": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                  text=True).stdout.strip(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "think_s": args.think,
           "demo_prepare": os.environ.get("NG_DEMO_PREPARE", "1"), "presenters": []}
    tmp = Path(tempfile.mkdtemp(prefix="ng-demo-steps-"))
    if args.world:
        os.environ["NG_WORLD_DIR"] = str(Path(args.world).expanduser().resolve())  # the server inherits it
        out["world"] = {"folder": "given", "stored_readings": sorted(p.name for p in Path(args.world).glob("*/readings-*.json"))}
    with bw._streamlit(tmp, args.model) as srv:
        for i in range(args.presenters):
            load0 = os.getloadavg()
            t0 = time.monotonic()
            with bw._chromium() as page:
                times = bw._walk_guided_demo(page, srv, job_wait=args.job_wait * 1000, think=args.think)
            times["whole demo"] = round(time.monotonic() - t0, 1)
            row = {"presenter": i + 1, "seconds": times, "load_average_start": load0,
                   "load_average_end": os.getloadavg()}
            out["presenters"].append(row)
            print(f"presenter {i + 1}: {json.dumps(times)}; load average {load0[0]:.2f} -> "
                  f"{row['load_average_end'][0]:.2f}", flush=True)
    steps = list(out["presenters"][0]["seconds"])
    print("\n| step | " + " | ".join(f"presenter {r['presenter']}" for r in out["presenters"]) + " | target |")
    print("|---|" + "---|" * (len(out["presenters"]) + 1))
    for st in steps:
        cells = " | ".join(f"{r['seconds'].get(st, float('nan')):.1f}" for r in out["presenters"])
        print(f"| {st} | {cells} | {f'≤ {TARGETS[st]:g} s' if st in TARGETS else ''} |")
    print("\nload average (1 min) at the start / end: " + "; ".join(
        f"{r['load_average_start'][0]:.2f} / {r['load_average_end'][0]:.2f}" for r in out["presenters"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
