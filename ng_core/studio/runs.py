"""Runs: the session's view of the runs folder (list, load, save, delete, download), with the rule that in a
shared folder only the session that saved a run may delete it.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from ng_core.errors import BundleError, NGError
from ng_core.method.bundle import Run, list_runs
from ng_core.storage import run_folders


class RunsMixin:
    """Run bundles in ``self.runs_dir``."""

    def runs(self) -> list[dict]:
        return list_runs(self.runs_dir)

    def run_path(self, name: str) -> Path:
        """The folder of run ``name`` inside the runs folder (names only: no paths, no symlinks out)."""
        return run_folders.run_path(self.runs_dir, name)

    def load_run(self, name_or_path, apply: bool = True) -> Run:
        """Load a run bundle (refused if made for another model); an edit run's ΔW becomes the session's edit.

        A string is a run name inside the runs folder (a ``?run=`` link, the Runs page); only a
        :class:`~pathlib.Path` given by code may point elsewhere.
        """
        path = name_or_path if isinstance(name_or_path, Path) else self.run_path(name_or_path)
        run = Run.load(path, self.adapter)
        if apply:
            if run.kind == "edit":
                label = f"run {path.name}"
                self.apply_edit([replace(d, label=f"{label} L{d.layer}") for d in run.deltas()], run, label)
            if run.tensors.get("masks") or run.tensors.get("scores"):
                with self.shared.lock:
                    self.localization = run
        return run

    def save_run(self, run: Run, name: str) -> Path:
        path = self.run_path(name)
        if path.exists():
            raise BundleError(f"a run named {name!r} already exists; choose another name or delete it first")
        run.save(path)
        run_folders.mark_owner(path, self.shared.owner_token)
        self._log("save", f"{run.kind} run saved as {name}")
        return path

    def save_edit(self, name: str) -> Path:
        if self.edit_run is None:
            raise NGError("there is no edit to save: run an edit first")
        return self.save_run(self.edit_run, name)

    def can_delete_run(self, name: str) -> tuple[bool, str]:
        """Whether this session may delete run ``name``, and why not (a shared runs folder: only the session
        that saved a run deletes it, unless ``delete_any_run``)."""
        path = self.run_path(name)
        if self.delete_any_run or run_folders.owned_by(path, self.shared.owner_token):
            return True, ""
        return False, (f"run {name!r} was not saved by this browser session, so it cannot be deleted here; "
                       "delete its folder on disk, or start the dashboard with NG_DELETE_ANY_RUN=1 on a "
                       "single-user machine")

    def delete_run(self, name: str) -> None:
        path = self.run_path(name)
        if not (path / "run.json").is_file():
            raise BundleError(f"{path} is not a run bundle; nothing was deleted")
        ok, why = self.can_delete_run(name)
        if not ok:
            raise BundleError(why + "; nothing was deleted")
        shutil.rmtree(path)
        with self.shared.lock:
            if self.edit_run is not None and self.edit_run.path == path:
                self.edit_run.path = None
            if self.localization is not None and self.localization.path == path:
                self.localization.path = None

    def run_archive(self, name: str) -> bytes:
        """The run folder as a zip file, in memory (for a download button); symlinks are never followed."""
        path = self.run_path(name)
        if not (path / "run.json").is_file():
            raise BundleError(f"{name} is not a run bundle")
        return run_folders.archive(path)
