"""Reliability cases for an overwrite stopped at every step of the swap and its cleanup.

``ng edit --out EXISTING`` gets SIGINT, SIGTERM or ``kill -9`` at each step of
:func:`ng_core.storage.atomic_dir.replace_dir` (with the atomic exchange, and with the two-step fallback). Each
ends with a whole run at ``--out`` (the old one before the swap, the new one after; found by the next start), no
leftovers once they are stale, and for SIGINT/SIGTERM a message that names the run ``--out`` holds. The forks run
in one child process (``interrupt_child.py``), started once per suite run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from reliability_core import Case, Lost, Wrong

STEPS = {"exchange": ("written", "swapped", "old-half-removed", "done"),
         "fallback": ("written", "old-set-aside", "swapped", "old-half-removed", "done"),
         "exchange-wrapped": ("exchange-returned",)}  # the signal sent as atomic_dir.exchange returns
SIGNALS = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": None}
AFTER_SWAP = ("swapped", "old-half-removed", "done", "exchange-returned")
_CHILD = Path(__file__).with_name("interrupt_child.py")


def _batch(ctx) -> dict:
    """{(mode, signal, step): (out, result)} for every case, run once and kept on ``ctx``."""
    got = getattr(ctx, "_interrupts", None)
    if got is not None:
        return got
    root = ctx.tmp()
    specs, keys = [], []
    for mode, steps in STEPS.items():
        for sig in SIGNALS:
            for step in steps:
                d = root / f"{mode}-{sig}-{step}"
                d.mkdir()
                shutil.copytree(ctx.base_run(), d / "run")
                specs.append({"mode": mode, "signal": sig, "step": step, "out": str(d / "run"),
                              "result": str(d / "result.json")})
                keys.append((mode, sig, step))
    (root / "specs.json").write_text(json.dumps(specs))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_CHILD.parents[1]), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(_CHILD), str(root / "specs.json")], env=env, cwd=_CHILD.parents[1],
                   timeout=300, check=True, capture_output=True)
    ctx._interrupts = {k: (Path(s["out"]), json.loads(Path(s["result"]).read_text())) for k, s in zip(keys, specs)}
    return ctx._interrupts


def _check(ctx, mode: str, sig: str, step: str) -> None:
    import ng_core.storage.atomic_dir as AD
    from ng_core.errors import NGError
    from ng_core.method.bundle import Run, list_runs

    out, res = _batch(ctx)[(mode, sig, step)]
    if "crash" in res:
        raise RuntimeError(f"the command crashed: {res['crash']}")
    # SIGINT/SIGTERM inside the swap wait for it to finish; only a kill can stop it between its two renames
    holds_new = step in AFTER_SWAP if sig == "SIGKILL" else step != "written"
    where = f"{sig} at {mode}/{step}"
    if sig == "SIGKILL":
        if res["killed_by"] != 9:
            raise Wrong(f"{where}: the command was not stopped by the kill ({res})")
    else:
        if res["killed_by"] is not None or res.get("rc") != SIGNALS[sig]:
            raise Wrong(f"{where}: exit {res.get('rc')}, killed by {res['killed_by']}; want exit {SIGNALS[sig]} "
                        "with a message")
        line = (res["stderr"].strip().splitlines() or [""])[-1]
        want = (f"the new run was saved: {out} holds the new run" if holds_new
                else f"nothing was saved: {out} still holds the run it held before")
        if want not in line:
            raise Lost(f"{where}: the message {line!r} does not say what --out holds (want {want!r})")
    try:
        note = Run.load(out).metrics.get("note")  # the next start: a swap stopped midway is repaired first
    except NGError as e:
        raise Lost(f"{where}: --out holds no whole run: {e}") from None
    if note != ("new" if holds_new else "base"):
        raise Lost(f"{where}: --out holds the {'old' if holds_new else 'new'} run (metrics note {note!r})")
    rows = list_runs(out.parent)
    if [r["name"] for r in rows] != ["run"] or rows[0]["error"]:
        raise Wrong(f"{where}: listing {rows}")
    AD.recover(out.parent, now=1e12)  # later: stale leftovers removed
    left = sorted(p.name for p in out.parent.iterdir() if p.name not in ("run", "result.json"))
    if left:
        raise Wrong(f"{where}: leftovers {left}")


def all_cases() -> list[Case]:
    return [Case("overwrite-interrupts", f"{mode}-{sig}-{step}", lambda c, m=mode, s=sig, t=step: _check(c, m, s, t),
                 expect_error=False)
            for mode, steps in STEPS.items() for sig in SIGNALS for step in steps]
