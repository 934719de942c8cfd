"""``ng report-html RUN --out FILE``: a run bundle's story as one self-contained HTML file."""
from __future__ import annotations

import sys

from ng_core.cli import args as A


def cmd_report_html(args) -> int:
    from ng_core.method.bundle import Run  # deferred: torch (``ng --help`` must not wait for it)
    from ng_core.studio.html_report import run_story, write_html  # deferred: torch

    run = Run.load(args.run)
    out = write_html(run_story(run), args.out)
    print(str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, self-contained)", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("report-html", help="one self-contained HTML report of a run bundle",
                       description="Write a run bundle's story (config, metrics, model fingerprint, versions, the "
                       "localization heatmap and where the edit went, answers stored with the run) as one HTML file "
                       "with plotly.js embedded: it opens offline and can be shared as is.")
    p.add_argument("run", help="run bundle folder")
    p.add_argument("--out", required=True, type=A.out_file, help="HTML file to write")
    p.set_defaults(func=cmd_report_html)
