"""The house's import contracts (``.importlinter``) hold: the core's layers in pipeline order, the dashboard
speaking only to the studio, nothing in the core importing the training package. Run by import-linter itself,
so what the contracts say is what CI checks."""
from __future__ import annotations

import os
from pathlib import Path

from importlinter import cli

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_pass(capsys):
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        code = cli.lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True)
    finally:
        os.chdir(here)
    out = capsys.readouterr().out
    assert code == 0, out[out.find("Broken contracts"):] or out
