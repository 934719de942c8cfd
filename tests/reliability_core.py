"""The reliability suite's machinery: a case, the shared context it runs in, and how an outcome is classified.

Outcomes (the README's table counts them, ``python bench/reliability_table.py``):

- ``clear``: refused with one line meant for a person (an ``NGError``, or the CLI's one-line
  ``error:`` / argparse message with a non-zero exit status);
- ``ok``: accepted, and the result checked correct by the case;
- ``crash``: any other exception (a traceback), or a hang past the time limit;
- ``wrong``: accepted, but the case's check found a wrong result;
- ``lost``: a saved run disappeared or changed (faults during writes).
"""
from __future__ import annotations

import contextlib
import io
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

OUTCOMES = ("clear", "ok", "crash", "wrong", "lost")
TIME_LIMIT_S = 20


class Wrong(Exception):
    """The case's check failed: the input was accepted but the result is wrong."""


class Lost(Exception):
    """A run that existed before the fault is gone or changed."""


@dataclass
class Case:
    group: str
    name: str
    fn: Callable  # fn(ctx) -> None; raises NGError (clear), Wrong, Lost, or returns (ok)
    expect_error: bool = True  # an accepted input counts as wrong when the case expects a refusal

    @property
    def id(self) -> str:
        return f"{self.group}:{self.name}"


class Ctx:
    """What the cases share: the tiny-random model, a saved run, and a fresh temp folder per case."""

    def __init__(self):
        from ng_core.models import load_model

        self.adapter = load_model("tiny-random")
        self.root = Path(tempfile.mkdtemp(prefix="ng-reliability-"))
        self._base_run: Path | None = None
        self._n = 0

    def tmp(self) -> Path:
        self._n += 1
        p = self.root / f"c{self._n}"
        p.mkdir()
        return p

    def base_run(self) -> Path:
        """A valid edit run bundle for the tiny model (made once)."""
        if self._base_run is None:
            import torch

            from ng_core.method.bundle import Run

            a = self.adapter
            r = Run.new("edit", a, {"layer": 2, "categories": ["passport"]}, {"seed": 1})
            g = torch.Generator().manual_seed(0)
            r.tensors["masks"]["passport/L2/raw"] = torch.randn(2, a.hidden_size, generator=g)
            r.tensors["masks"]["passport/L2/freq"] = torch.rand(a.hidden_size, generator=g)
            r.tensors["masks"]["passport/L2/selected"] = torch.ones(a.hidden_size, dtype=torch.uint8)
            r.tensors["deltas"]["L2"] = torch.randn(a.hidden_size, a.ffn_size, generator=g) * 1e-3
            r.tensors["deltas"]["passport/L2"] = r.tensors["deltas"]["L2"].clone()
            r.tensors["deltas"]["passport/L2/gate"] = torch.ones(a.hidden_size, dtype=torch.uint8)
            r.metrics = {"note": "base"}
            self._base_run = r.save(self.root / "base-run")
        return self._base_run

    def run_copy(self, name: str = "run") -> Path:
        dst = self.tmp() / name
        shutil.copytree(self.base_run(), dst)
        return dst

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


def _clear(msg: str) -> bool:
    """A message for a person: not empty, no traceback, a first line that says what is wrong."""
    return bool(msg.strip()) and "Traceback" not in msg and len(msg.splitlines()[0]) < 400


@contextlib.contextmanager
def _time_limit(seconds: int):
    def boom(*_):
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def classify(case: Case, ctx: Ctx) -> tuple[str, str]:
    """(outcome, detail) of running ``case``."""
    from ng_core.errors import NGError

    try:
        with _time_limit(TIME_LIMIT_S):
            case.fn(ctx)
    except NGError as e:
        return ("clear", str(e)) if _clear(str(e)) else ("crash", f"unclear message: {e!r}")
    except CliRefused as e:
        return "clear", str(e)
    except Wrong as e:
        return "wrong", str(e)
    except Lost as e:
        return "lost", str(e)
    except BaseException as e:  # noqa: BLE001 - everything else is a crash
        return "crash", f"{type(e).__name__}: {e}"
    if case.expect_error:
        return "wrong", "accepted an input that must be refused"
    return "ok", ""


class CliRefused(Exception):
    """The CLI stopped with a non-zero status and one clear line on stderr."""


def run_cli(argv: list[str], forbid_load: bool = True) -> str:
    """Run ``ng ARGV``; raise :class:`CliRefused` on a clear refusal, return stdout on success.

    With ``forbid_load``, loading a model is a failure: a bad argument must be found before any work.
    """
    import ng_core.models as M
    from ng_core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    real = M.load_model

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the bad argument was found")

    if forbid_load:
        M.load_model = no_load
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        M.load_model = real
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:") or ": error:" in ln]
    if rc:
        if "Traceback" in err.getvalue() or len(lines) != 1:
            raise RuntimeError(f"exit {rc} without one clear error line: {err.getvalue()[-300:]!r}")
        raise CliRefused(lines[0])
    return out.getvalue()
