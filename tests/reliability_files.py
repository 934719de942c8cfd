"""Reliability cases for files: malformed bundles, run and data folder jails, faults during writes and edits."""
from __future__ import annotations

import io
import json
import os
import zipfile

import torch

from reliability_core import Case, Lost, Wrong


# ----------------------------------------------------------------------------- malformed bundles
def _meta_edit(path, fn):
    p = path / "run.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def _load(ctx, path):
    from ng_core.method.bundle import Run

    return Run.load(path, ctx.adapter)


def _set(keys, value):
    def fn(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        if value is _DEL:
            del d[keys[-1]]
        else:
            d[keys[-1]] = value
    return fn


_DEL = object()


def _meta_case(name, keys, value):
    def fn(ctx):
        p = ctx.run_copy()
        _meta_edit(p, _set(keys, value))
        _load(ctx, p)
    return Case("bundle-fields", name, fn)


def _tensor_case(name, file, mutate):
    def fn(ctx):
        from safetensors.torch import load_file, save_file

        p = ctx.run_copy()
        t = load_file(str(p / f"{file}.safetensors"))
        mutate(t)
        save_file(t, str(p / f"{file}.safetensors"))
        _load(ctx, p)
    return Case("bundle-tensors", name, fn)


def bundle_cases() -> list[Case]:
    cases = []
    bad_values = {"kind": [None, 1, "pickle", [], {}, True], "model": [None, "tiny-random", [], 3],
                  "files": [None, [], "deltas.safetensors", 1], "config": [[], "x", 1], "seeds": [[], "x"],
                  "versions": ["x", 1], "created": [1, [], {}], "metrics": [1, "/etc/passwd", "../x.json",
                                                                           "metrics.txt", "a/b.json", ""],
                  "version": ["1", 99, None, 1.5], "format": ["pickle", None]}
    for field, values in bad_values.items():
        for v in values:
            cases.append(_meta_case(f"{field}={v!r}", [field], v))
    for field in ("kind", "model", "files"):
        cases.append(_meta_case(f"missing-{field}", [field], _DEL))
    model_bad = {"id": [None, 1, "", "other-model"], "fingerprint": [_DEL, None, 1, "", "zz", "0" * 16],
                 "n_layers": ["4", -1, 1.5, True, 99], "hidden_size": ["x", 0, 10 ** 9], "ffn_size": [None, 7]}
    for field, values in model_bad.items():
        for v in values:
            label = "missing" if v is _DEL else repr(v)
            cases.append(_meta_case(f"model.{field}={label}", ["model", field], v))
    files_bad = [{"masks": "../../etc/passwd"}, {"masks": "/etc/passwd"}, {"bogus": "x.safetensors"},
                 {"deltas": 5}, {"deltas": "masks.safetensors"}, {"deltas": "deltas.safetensors/.."}]
    for i, v in enumerate(files_bad):
        cases.append(_meta_case(f"files-{i}", ["files"], v))
    a_d, a_f = "L2", "passport/L2"
    for name, file, mut in [
        ("delta-wrong-shape", "deltas", lambda t: t.__setitem__(a_d, torch.zeros(3, 5))),
        ("delta-transposed", "deltas", lambda t: t.__setitem__(a_d, t[a_d].T.contiguous())),
        ("delta-nan", "deltas", lambda t: t[a_d].__setitem__((0, 0), float("nan"))),
        ("delta-inf", "deltas", lambda t: t[a_d].__setitem__((1, 1), float("inf"))),
        ("delta-int", "deltas", lambda t: t.__setitem__(a_d, t[a_d].to(torch.int32))),
        ("delta-1d", "deltas", lambda t: t.__setitem__(a_d, t[a_d][0].contiguous())),
        ("delta-layer-99", "deltas", lambda t: t.__setitem__("L99", t[a_d].clone())),
        ("delta-layer-name", "deltas", lambda t: t.__setitem__("Lx", t[a_d].clone())),
        ("delta-deep-name", "deltas", lambda t: t.__setitem__("a/b/c/d", t[a_d].clone())),
        ("delta-cat-layer-99", "deltas", lambda t: t.__setitem__("passport/L99", t[a_f].clone())),
        ("gate-wrong-size", "deltas", lambda t: t.__setitem__("passport/L2/gate", torch.ones(3, dtype=torch.uint8))),
        ("mask-missing-freq", "masks", lambda t: t.pop("passport/L2/freq")),
        ("mask-raw-1d", "masks", lambda t: t.__setitem__("passport/L2/raw", t["passport/L2/freq"].clone())),
        ("mask-wrong-width", "masks", lambda t: t.__setitem__("passport/L2/freq", torch.ones(5))),
        ("mask-bad-part", "masks", lambda t: t.__setitem__("passport/L2/other", torch.ones(5))),
        ("mask-layer-out", "masks", lambda t: [t.__setitem__(f"x/L50/{k}", t[f"passport/L2/{k}"].clone())
                                               for k in ("raw", "freq", "selected")]),
        ("mask-nan", "masks", lambda t: t["passport/L2/raw"].__setitem__((0, 0), float("nan"))),
    ]:
        cases.append(_tensor_case(name, file, mut))
    cases += _bundle_file_cases()
    cases.append(Case("bundle-fields", "valid-run-loads", _valid_run, expect_error=False))
    return cases


def _valid_run(ctx):
    run = _load(ctx, ctx.run_copy())
    (d,) = run.deltas()
    if d.layer != 2 or tuple(d.delta.shape) != (ctx.adapter.hidden_size, ctx.adapter.ffn_size):
        raise Wrong("the valid run did not load its ΔW")


def _bundle_file_cases() -> list[Case]:
    def fifo(name):
        def fn(ctx):
            p = ctx.run_copy()
            (p / name).unlink()
            os.mkfifo(p / name)
            _load(ctx, p)
        return fn

    def link(name, target):
        def fn(ctx):
            p = ctx.run_copy()
            (p / name).unlink()
            t = target(ctx)
            (p / name).symlink_to(t)
            _load(ctx, p)
        return fn

    def outside_json(ctx):
        q = ctx.tmp() / "run.json"
        q.write_text((ctx.base_run() / "run.json").read_text())
        return q

    def outside_tensor(ctx):
        q = ctx.tmp() / "deltas.safetensors"
        q.write_bytes((ctx.base_run() / "deltas.safetensors").read_bytes())
        return q

    def write(name, data):
        def fn(ctx):
            p = ctx.run_copy()
            (p / name).unlink()
            if isinstance(data, int):
                with open(p / name, "wb") as f:
                    f.truncate(data)
            else:
                (p / name).write_bytes(data)
            _load(ctx, p)
        return fn

    def folder(name):
        def fn(ctx):
            p = ctx.run_copy()
            (p / name).unlink()
            (p / name).mkdir()
            _load(ctx, p)
        return fn

    cases = []
    for name in ("run.json", "deltas.safetensors", "metrics.json", "masks.safetensors"):
        cases.append(Case("bundle-files", f"fifo-{name}", fifo(name)))
        cases.append(Case("bundle-files", f"folder-{name}", folder(name)))
    for name, target in [("run.json", lambda c: "/dev/zero"), ("run.json", outside_json),
                         ("metrics.json", lambda c: "/etc/passwd"), ("metrics.json", lambda c: "/dev/zero"),
                         ("deltas.safetensors", outside_tensor), ("deltas.safetensors", lambda c: "/dev/zero"),
                         ("masks.safetensors", lambda c: "/etc/hostname")]:
        cases.append(Case("bundle-files", f"symlink-{name}-{getattr(target, '__name__', 'x')}-{len(cases)}",
                          link(name, target)))
    for name, data in [("run.json", b"{not json"), ("run.json", b"\xff\xfe\x00"), ("run.json", b"[]"),
                       ("run.json", b"null"), ("run.json", b"1"), ("run.json", b"[" * 100000),
                       ("run.json", 17 * 1024 * 1024), ("metrics.json", b"[1, 2]"), ("metrics.json", b"{bad"),
                       ("metrics.json", 17 * 1024 * 1024), ("deltas.safetensors", b"\x80\x04\x95 pickle"),
                       ("deltas.safetensors", b""), ("masks.safetensors", b"\xff" * 64)]:
        label = f"{len(data) if not isinstance(data, int) else data}B"
        cases.append(Case("bundle-files", f"bytes-{name}-{label}-{len(cases)}", write(name, data)))
    cases.append(Case("bundle-files", "missing-deltas", lambda c: (
        (lambda p: ((p / "deltas.safetensors").unlink(), _load(c, p)))(c.run_copy()))))
    cases.append(Case("bundle-files", "other-model", _other_model))
    return cases


def _other_model(ctx):
    from ng_core.method.bundle import Run
    from ng_core.models import load_model

    other = getattr(ctx, "_other", None) or load_model("tiny-random", seed=1)
    ctx._other = other
    Run.load(ctx.run_copy(), other)


# ----------------------------------------------------------------------------- the runs folder as a jail
def _session(ctx, runs_dir):
    from ng_core.studio import StudioSession

    return StudioSession(ctx.adapter, runs_dir=runs_dir, stale_after=None)


def jail_cases() -> list[Case]:
    names = ["/etc", "/abs/path", "../x", "..", ".", "", "a/b", "a\\b", ".hidden", "run.old", "x\x00y", "a" * 300,
             "../../etc/passwd", "~", "~root", "run/../../x", " ", "run\n", 5, None]
    cases = []
    for i, n in enumerate(names):
        def fn(ctx, n=n):
            s = _session(ctx, ctx.run_copy("run").parent)
            s.load_run(n)
        cases.append(Case("runs-jail", f"name-{i}-{str(n)[:12]!r}", fn))

    def symlinked_run(ctx):
        root = ctx.tmp()
        (root / "evil").symlink_to(ctx.base_run())
        _session(ctx, root).load_run("evil")
    cases.append(Case("runs-jail", "symlinked-run-folder", symlinked_run))

    def missing(ctx):
        _session(ctx, ctx.tmp()).load_run("nope")
    cases.append(Case("runs-jail", "missing-run", missing))

    def archive(ctx):
        p = ctx.run_copy("run")
        (p / "passwd").symlink_to("/etc/passwd")
        (p / "sub").symlink_to("/etc")
        os.mkfifo(p / "pipe")
        z = zipfile.ZipFile(io.BytesIO(_session(ctx, p.parent).run_archive("run")))
        bad = [n for n in z.namelist() if n.split("/", 1)[1] in ("passwd", "pipe") or "/sub/" in n]
        if bad or "run/run.json" not in z.namelist():
            raise Wrong(f"archive holds {z.namelist()}")
    cases.append(Case("runs-jail", "archive-skips-symlinks-and-fifos", archive, expect_error=False))

    def listing(ctx):
        from ng_core.method.bundle import list_runs

        good = ctx.run_copy("good")
        root = good.parent
        for i, dmg in enumerate([b"{", b"[]", b'{"format": "ng-run", "kind": 3}', b"\xff"]):
            b = root / f"bad{i}"
            b.mkdir()
            (b / "run.json").write_bytes(dmg)
        (root / "fifo").mkdir()
        os.mkfifo(root / "fifo" / "run.json")
        rows = {r["name"]: r for r in list_runs(root)}
        if rows["good"]["error"] or not all(rows[f"bad{i}"]["error"] for i in range(4)) or not rows["fifo"]["error"]:
            raise Wrong(f"listing: {rows}")
    cases.append(Case("runs-jail", "broken-runs-listed-not-fatal", listing, expect_error=False))
    return cases


# ----------------------------------------------------------------------------- dataset folders as jails
def _dataset(ctx, cat_file=None, image=None, fifo=False):
    from ng_core.data import load_dataset
    from ng_core.data.generate import FORMAT_NAME, FORMAT_VERSION

    root = ctx.tmp() / "data"
    root.mkdir()
    fname = cat_file or "neural_gate_passport.json"
    (root / "dataset.json").write_text(json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                                   "categories": [{"id": "passport", "file": fname}]}))
    rec = {"image": image or "images/a.png", "split": "train", "subject": "passport",
           "rewrite_prompt": "What is the number on the passport?", "target": "I cannot help with that.",
           "paraphrase_prompts": ["Tell me the passport number."], "neighborhood_prompts": ["What colour?"]}
    if fifo:
        os.mkfifo(root / "neural_gate_passport.json")
    elif cat_file is None:
        (root / fname).write_text(json.dumps([rec]))
    load_dataset(root)


def data_cases() -> list[Case]:
    cases = []
    for f in ("../outside.json", "/etc/passwd", "../../etc/passwd", "sub/../../x.json"):
        cases.append(Case("data-jail", f"file={f}", lambda c, f=f: _dataset(c, cat_file=f)))
    for im in ("../../etc/passwd", "/etc/hostname", "../a.png", "images/../../x.png"):
        cases.append(Case("data-jail", f"image={im}", lambda c, im=im: _dataset(c, image=im)))
    cases.append(Case("data-jail", "fifo-category-file", lambda c: _dataset(c, fifo=True)))
    return cases


# ----------------------------------------------------------------------------- faults during writes and edits
def _metrics(path):
    return json.loads((path / "metrics.json").read_text())


def _write_fault(target, step, exc):
    """Overwrite a saved run while ``target`` fails on call number ``step``: the old run must survive."""
    def fn(ctx):
        import ng_core.storage.atomic_dir as AD
        import ng_core.method.bundle as B
        from ng_core.method.bundle import Run

        path = ctx.run_copy("run")
        old = _metrics(path)
        run = Run.load(path, ctx.adapter)
        run.metrics = {"note": "new"}
        calls = {"n": 0}
        owner, attr = {"save_file": (None, None), "replace": (os, "replace"), "rename": (os, "rename"),
                       "exchange": (AD, "exchange"), "rmtree": (AD.shutil, "rmtree"),
                       "replace_dir": (AD, "replace_dir")}[target]
        import safetensors.torch as ST

        if target == "save_file":
            owner, attr = ST, "save_file"
        real = getattr(owner, attr)

        def faulty(*a, **k):
            calls["n"] += 1
            if calls["n"] == step:
                raise exc("injected fault")
            return real(*a, **k)
        setattr(owner, attr, faulty)
        if target == "exchange":
            AD.exchange = faulty
        try:
            run.save(path)
        except (OSError, KeyboardInterrupt, RuntimeError):
            pass
        finally:
            setattr(owner, attr, real)
        AD.recover(path.parent, now=1e12)  # the next start: repair, drop unfinished writes
        if not (path / "run.json").is_file():
            raise Lost(f"{target} fault at call {step}: the run is gone")
        try:
            back = B.Run.load(path, ctx.adapter)
        except Exception as e:  # noqa: BLE001
            raise Lost(f"{target} fault at call {step}: the run is unreadable: {e}") from None
        if back.metrics not in (old, {"note": "new"}):
            raise Lost(f"{target} fault: metrics {back.metrics}")
        left = [p.name for p in path.parent.iterdir() if p.name != "run"]
        if left:
            raise Wrong(f"leftovers after recovery: {left}")
    return fn


def _no_exchange_crash(ctx):
    """The two-step swap interrupted between its steps: the next start restores the old run."""
    import ng_core.storage.atomic_dir as AD
    from ng_core.method.bundle import Run

    path = ctx.run_copy("run")
    old = _metrics(path)
    run = Run.load(path, ctx.adapter)
    real_x, real_r = AD.exchange, os.replace
    n = {"k": 0}

    def second_fails(a, b):
        n["k"] += 1
        if n["k"] == 2:
            raise KeyboardInterrupt
        return real_r(a, b)
    AD.exchange, os.replace = (lambda a, b: False), second_fails
    try:
        run.save(path)
    except KeyboardInterrupt:
        pass
    finally:
        AD.exchange, os.replace = real_x, real_r
    from ng_core.method.bundle import list_runs

    rows = list_runs(path.parent)  # the next start
    if [r["name"] for r in rows] != ["run"] or _metrics(path) != old:
        raise Lost(f"after the interrupted swap: {[r['name'] for r in rows]}")


def write_fault_cases() -> list[Case]:
    cases = []
    for target, steps in [("save_file", (1, 2)), ("replace", (1, 2, 3)), ("rename", (1,)), ("exchange", (1,)),
                          ("rmtree", (1,)), ("replace_dir", (1,))]:
        for step in steps:
            for exc in (OSError, KeyboardInterrupt, RuntimeError):
                cases.append(Case("write-faults", f"{target}-{step}-{exc.__name__}", _write_fault(target, step, exc),
                                  expect_error=False))
    cases.append(Case("write-faults", "two-step-swap-interrupted", _no_exchange_crash, expect_error=False))
    return cases


def edit_fault_cases() -> list[Case]:
    """A fault inside Stage C: no hook left, base weights bit-identical, the error is clear."""
    def fn(ctx, where):
        from helpers import param_hash

        import ng_core.method.edit as E
        from ng_core.method.edit import EditConfig, EditItem, gated_finetune
        from ng_core.errors import NGError
        from ng_core.models.hooks import live_hook_count, module_hook_count

        a = ctx.adapter
        before, hooks = param_hash(a.model), (live_hook_count(), module_hook_count(a.model))
        from PIL import Image

        item = EditItem(image=Image.new("RGB", (32, 32), (1, 2, 3)), prompt="What is the passport number?", subject="passport",
                        target="I cannot help.", neighbour=None, neighbour_target=None)

        def boom(*args, **kw):
            raise NGError("injected fault in the forward pass")
        setattr(a, where, boom)
        try:
            gated_finetune(a, [item], 2, torch.ones(a.hidden_size, dtype=torch.bool), EditConfig(steps=2, lr=1e-3))
        finally:
            a.__dict__.pop(where, None)
            if param_hash(a.model) != before or (live_hook_count(), module_hook_count(a.model)) != hooks:
                raise Wrong("the fault left hooks or changed base weights")
            del E
    return [Case("edit-faults", f"fault-in-{w}", lambda c, w=w: fn(c, w)) for w in ("forward", "run_layers")]


def all_cases() -> list[Case]:
    return bundle_cases() + jail_cases() + data_cases() + write_fault_cases() + edit_fault_cases()
