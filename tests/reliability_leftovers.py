"""Reliability cases for what a probe of bad inputs still found: an edit run without a weight edit, a swap stopped
between its two renames, checks that came after the work, and unreadable run folders."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from reliability_core import Case, Wrong, run_cli

_ASK = ["ask", "--model", "tiny-random", "--prompt", "hi"]
_OUT_CMDS = {"edit": ["edit", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out"],
             "localize": ["localize", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out"],
             "scores": ["scores", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out"],
             "evaluate": ["evaluate", "--model", "tiny-random", "--cases", "c.jsonl", "--out"]}


# ----------------------------------------------------------------------------- an edit run without a weight edit
def _tensors(p, fn):
    from safetensors.torch import load_file, save_file

    t = load_file(str(p / "deltas.safetensors"))
    fn(t)
    save_file(t, str(p / "deltas.safetensors"))


def _meta(p, fn):
    meta = json.loads((p / "run.json").read_text())
    fn(meta)
    (p / "run.json").write_text(json.dumps(meta))


def _no_tensors(p):
    _tensors(p, lambda t: t.clear())


def _only_category(p):
    _tensors(p, lambda t: t.pop("L2"))


def _no_file(p):
    (p / "deltas.safetensors").unlink()
    _meta(p, lambda m: m["files"].pop("deltas"))


def _sizes_dropped(p):  # a ΔW for another shape, with nothing in run.json to check it against
    def fn(t):
        for k in ("L2", "passport/L2"):
            t[k] = t[k].T.contiguous()
    _tensors(p, fn)
    _meta(p, lambda m: [m["model"].pop(k) for k in ("hidden_size", "ffn_size")])


BROKEN = {"deltas-hold-no-tensors": _no_tensors, "deltas-without-total": _only_category,
          "no-deltas-file": _no_file, "another-shape-unchecked": _sizes_dropped}


def _broken(ctx, how) -> Path:
    p = ctx.run_copy("run")
    BROKEN[how](p)
    return p


def _studio_load(ctx, how):
    """The dashboard's "Load into this session": refused, and the session's edit stays as it was."""
    from ng_core.errors import NGError
    from ng_core.studio import StudioSession

    p = _broken(ctx, how)
    shutil.copytree(ctx.base_run(), p.parent / "good")
    s = StudioSession(ctx.adapter, runs_dir=p.parent, stale_after=None)
    s.load_run("good")
    before = s.edit_fingerprint()
    try:
        s.load_run("run")
    except NGError:
        if s.edit_fingerprint() != before:
            raise Wrong("the refused run still changed the session's edit") from None
        raise
    raise Wrong(f"loaded; the session's edit went from {before} to {s.edit_fingerprint()}")


def _report_html(ctx, how):
    p = _broken(ctx, how)
    run_cli(["report-html", str(p), "--out", str(p.parent / "r.html")])


def _listed(ctx):
    from ng_core.method.bundle import list_runs

    root = ctx.tmp()
    for how, fn in BROKEN.items():
        shutil.copytree(ctx.base_run(), root / how)
        fn(root / how)
    rows = {r["name"]: r["error"] for r in list_runs(root)}
    if set(rows) != set(BROKEN) or not all(rows.values()):
        raise Wrong(f"listing: {rows}")


def edit_cases() -> list[Case]:
    from reliability_files import _load

    cases = []
    for how in BROKEN:
        cases.append(Case("edit-without-deltas", f"load-{how}", lambda c, h=how: _load(c, _broken(c, h))))
        cases.append(Case("edit-without-deltas", f"cli-ask-{how}",
                          lambda c, h=how: run_cli(_ASK + ["--run", str(_broken(c, h))])))
        cases.append(Case("edit-without-deltas", f"studio-{how}", lambda c, h=how: _studio_load(c, h)))
        cases.append(Case("edit-without-deltas", f"report-html-{how}", lambda c, h=how: _report_html(c, h)))
    cases.append(Case("edit-without-deltas", "listed-as-broken", _listed, expect_error=False))
    return cases


# ----------------------------------------------------------------------------- a swap stopped between its renames
def _only_old(ctx) -> Path:
    """What a kill between the two renames of the fallback swap leaves: ``.run.old`` and no ``run``."""
    p = ctx.run_copy("run")
    os.rename(p, p.with_name(".run.old"))
    return p


def _restored(fn):
    """The case as an ``ok`` case: refusing the repaired run (e.g. "run folder not found") is wrong."""
    def case(ctx):
        from ng_core.errors import NGError

        from reliability_core import CliRefused
        try:
            fn(ctx)
        except (NGError, CliRefused) as e:
            raise Wrong(f"refused: {e}") from None
    return case


def _ask_restores(ctx):
    import ng_core.models as M

    p = _only_old(ctx)
    real = M.load_model
    M.load_model = lambda *a, **k: ctx.adapter
    try:
        out = run_cli(_ASK + ["--run", str(p), "--max-new-tokens", "2"], forbid_load=False)
    finally:
        M.load_model = real
    if not out.strip() or not (p / "run.json").is_file():
        raise Wrong(f"answered {out!r}; run restored: {(p / 'run.json').is_file()}")


def _studio_restores(ctx):
    from ng_core.studio import StudioSession

    p = _only_old(ctx)
    run = StudioSession(ctx.adapter, runs_dir=p.parent, stale_after=None).load_run("run")
    if run.metrics.get("note") != "base":
        raise Wrong(f"loaded {run.metrics}")


def swap_cases() -> list[Case]:
    from reliability_files import _load

    def load(c):
        if _load(c, _only_old(c)).metrics.get("note") != "base":
            raise Wrong("the restored run is not the old one")
    return [Case("two-step-swap-killed", "run-load", _restored(load), expect_error=False),
            Case("two-step-swap-killed", "cli-ask", _restored(_ask_restores), expect_error=False),
            Case("two-step-swap-killed", "studio-load-run", _restored(_studio_restores), expect_error=False)]


# ----------------------------------------------------------------------------- checks before the work
def _one_upload_record(ctx, prompt="What is the passport number?", **kw):
    from PIL import Image

    from ng_core.studio import record_from_inputs

    return record_from_inputs(Image.new("RGB", (32, 32), (5, 5, 5)), prompt, "passport", **kw)


def _scores_one_upload(ctx, method):
    from ng_core.method.scores import ScoreConfig
    from ng_core.studio import StudioSession

    s = StudioSession(ctx.adapter, runs_dir=ctx.tmp(), stale_after=None)
    job = s.start_scores([_one_upload_record(ctx)], ScoreConfig(method=method, layers=(0,)))
    job.wait(60)
    raise Wrong(f"a {method} scores job started on one image ({job.status}: {job.error!r})")


def _set_prompt(ctx, prompt):
    from ng_core.studio import StudioSession

    StudioSession(ctx.adapter, runs_dir=ctx.tmp(), stale_after=None).set_prompt(prompt, "passport")


BAD_PROMPTS = {"nul": "What is the passport\x00 number?", "lone-surrogate": "What is the passport \ud800 number?",
               "20000-chars": "What is the passport number? " + "x" * 20000}


def _out_refused(argv):
    """The command must refuse ``--out`` itself, first: not fail on another argument, nor on the write at the end."""
    from reliability_core import CliRefused

    try:
        run_cli(argv)
    except CliRefused as e:
        if "/proc/ng-x" not in str(e) or "Errno" in str(e):
            raise Wrong(f"--out was not the refusal: {e}") from None
        raise


def entry_cases() -> list[Case]:
    cases = []
    for cmd, argv in _OUT_CMDS.items():
        ext = ".json" if cmd == "evaluate" else ""
        cases.append(Case("checks-first", f"{cmd}-out-proc", lambda c, a=argv, e=ext: _out_refused(a + ["/proc/ng-x" + e])))
    cases.append(Case("checks-first", "report-html-out-proc",
                      lambda c: _out_refused(["report-html", str(c.run_copy()), "--out", "/proc/ng-x.html"])))
    for method in ("contrast",):
        cases.append(Case("checks-first", f"start-scores-{method}-one-upload",
                          lambda c, m=method: _scores_one_upload(c, m)))
    for name, p in BAD_PROMPTS.items():
        kw = {"adapter": None} if name != "20000-chars" else {"adapter": "model"}  # the length needs the model

        def rec(c, kw=kw, **more):
            return _one_upload_record(c, **more, **({"adapter": c.adapter} if kw["adapter"] else {}))
        cases.append(Case("checks-first", f"record-question-{name}", lambda c, p=p, rec=rec: rec(c, prompt=p)))
        cases.append(Case("checks-first", f"record-benign-{name}", lambda c, p=p, rec=rec: rec(c, benign_prompt=p)))
        cases.append(Case("checks-first", f"record-target-{name}", lambda c, p=p, rec=rec: rec(c, target=p)))
        cases.append(Case("checks-first", f"dashboard-question-{name}", lambda c, p=p: _set_prompt(c, p)))
    for name in ("nul", "lone-surrogate"):
        cases.append(Case("checks-first", f"cli-ask-prompt-{name}",
                          lambda c, p=BAD_PROMPTS[name]: run_cli(["ask", "--model", "tiny-random", "--prompt", p])))
    return cases


# ----------------------------------------------------------------------------- unreadable run folders
_UNREADABLE_CHILD = """
import json, sys
from ng_core.cli.main import main
from ng_core.errors import NGError
from ng_core.method.bundle import Run, list_runs
root = sys.argv[1]
out = {}
try:
    Run.load(root + "/locked")
    out["load"] = "loaded"
except NGError as e:
    out["load"] = "error: " + str(e)
out["rows"] = list_runs(root)
import contextlib, io
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    main(["runs", root])
out["ng_runs"] = buf.getvalue()
print(json.dumps(out))
"""


def _unreadable(ctx) -> dict:
    """Run.load and list_runs on a folder this process may not read (as root: without the DAC override)."""
    got = getattr(ctx, "_unreadable", None)
    if got is not None:
        return got
    root = ctx.tmp()
    shutil.copytree(ctx.base_run(), root / "good")
    shutil.copytree(ctx.base_run(), root / "locked")
    os.chmod(root / "locked", 0)
    cmd = [sys.executable, "-c", _UNREADABLE_CHILD, str(root)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] + cmd
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=repo, OMP_NUM_THREADS="1")
    try:
        r = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, text=True, timeout=120, check=True)
    finally:
        os.chmod(root / "locked", 0o755)
    ctx._unreadable = json.loads(r.stdout.strip().splitlines()[-1])
    return ctx._unreadable


def _unreadable_load(ctx):
    msg = _unreadable(ctx)["load"]
    if "cannot be read" not in msg or "missing" in msg:
        raise Wrong(f"an unreadable run folder: {msg}")


def _unreadable_listed(ctx):
    rows = {r["name"]: r["error"] for r in _unreadable(ctx)["rows"]}
    if set(rows) != {"good", "locked"} or rows["good"] or "unreadable" not in (rows["locked"] or ""):
        raise Wrong(f"listing: {rows}")
    locked = [ln for ln in _unreadable(ctx)["ng_runs"].splitlines() if ln.startswith("locked")]
    if len(locked) != 1 or "unreadable" not in locked[0]:
        raise Wrong(f"ng runs printed {_unreadable(ctx)['ng_runs']!r}")


def unreadable_cases() -> list[Case]:
    return [Case("unreadable-runs", "load-says-unreadable", _unreadable_load, expect_error=False),
            Case("unreadable-runs", "listed-as-unreadable", _unreadable_listed, expect_error=False)]


def all_cases() -> list[Case]:
    return edit_cases() + swap_cases() + entry_cases() + unreadable_cases()
