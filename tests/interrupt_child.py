"""Child process of the overwrite-interrupt cases (``reliability_interrupts.py``): ``python interrupt_child.py SPECS``.

Imports the CLI once, then for each spec forks: the fork runs ``ng edit --out OUT`` over an existing run (the
model, data and edit replaced by stand-ins, so only the save is real) and sends itself the spec's signal at the
spec's step of the swap (:data:`ng_core.storage.atomic_dir.on_step`). What the fork printed and how it ended go to
``RESULT``, one JSON object per spec.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import types
from pathlib import Path


def _fake_adapter(meta: dict):
    m = meta["model"]
    return types.SimpleNamespace(model_id=m["id"], fingerprint=lambda: m["fingerprint"], n_layers=m["n_layers"],
                                 hidden_size=m["hidden_size"], ffn_size=m["ffn_size"])


def _one(spec: dict) -> None:
    """In the fork: run ``ng edit`` with the signal at the step; write what it said."""
    import torch

    import ng_core.cli.inputs as I
    import ng_core.method.pipeline as P
    import ng_core.method.presets as PR
    import ng_core.storage.atomic_dir as AD
    from ng_core.cli.main import main
    from ng_core.method.bundle import Run

    out = Path(spec["out"])
    a = _fake_adapter(json.loads((out / "run.json").read_text()))
    I.prepared = lambda args: (a, {}, 1, None, None, {})
    PR.preset_json = lambda p: {}

    def edit_run(*args, **kw):
        r = Run.new("edit", a, {"layer": 1}, {"seed": 0})
        r.tensors["deltas"]["L1"] = torch.full((a.hidden_size, a.ffn_size), 2.0)
        r.metrics = {"note": "new", "diagnostics": {}}
        return r
    P.edit_run = edit_run
    if spec["mode"] == "fallback":
        AD.exchange = lambda x, y: False
    sig = getattr(signal, spec["signal"])
    AD.on_step = lambda step: os.kill(os.getpid(), sig) if step == spec["step"] else None
    if spec["step"] == "exchange-returned":  # the probe's own way in, without the step hook
        real = AD.exchange

        def exchange(x, y):
            done = real(x, y)
            os.kill(os.getpid(), sig)
            return done
        AD.exchange = exchange
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["edit", "--model", "tiny-random", "--data", "d", "--category", "passport", "--out", str(out)])
    Path(spec["result"]).write_text(json.dumps({"rc": rc, "stderr": err.getvalue()}))


def main(specs_file: str) -> None:
    import torch

    torch.set_num_threads(1)
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler; the cases are about a user's Ctrl-C, so give SIGINT Python's own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import ng_core.cli.main  # noqa: F401 - imported once, before the forks
    import ng_core.method.localize  # noqa: F401
    import ng_core.method.pipeline  # noqa: F401

    specs = json.loads(Path(specs_file).read_text())
    for spec in specs:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _one(spec)
            except BaseException as e:  # noqa: BLE001 - reported to the parent, never past the fork
                Path(spec["result"]).write_text(json.dumps({"crash": f"{type(e).__name__}: {e}"}))
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        spec_result = Path(spec["result"])
        got = json.loads(spec_result.read_text()) if spec_result.exists() else {}
        got["killed_by"] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        spec_result.write_text(json.dumps(got))


if __name__ == "__main__":
    main(sys.argv[1])
