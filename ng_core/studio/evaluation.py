"""Evaluation from the dashboard: the evaluate job (base, system prompt, gates, edit and saved edit runs on
the same cases) and the refusal / benign-answer trade-off curve, computed as a job or loaded from a file.
"""
from __future__ import annotations

from ng_core.data.records import EvalCase, ImageRecord
from ng_core.errors import NGError
from ng_core.evaluation.evaluate import evaluate_cases
from ng_core.evaluation.tradeoff import check_sweep, tradeoff_curve
from ng_core.evaluation.tradeoff import load_tradeoff as read_tradeoff
from ng_core.method.bundle import Run
from ng_core.method.registry import BASELINE
from ng_core.studio.inputs import check_records
from ng_core.studio.jobs import Job


class EvaluationMixin:
    """Evaluate jobs and the trade-off curve of a session (neither changes its gates or edit)."""

    def start_tradeoff(self, records_by_category: dict[str, list[ImageRecord]], layer: int, cases: list[EvalCase],
                       *, param: str = "lr", values=None, mask_cfg=None, edit_cfg=None, control: bool = True,
                       seed: int = 0, masks: dict | None = None, max_new_tokens: int | None = None) -> Job:
        """The refusal / benign-answer trade-off over ``param`` (``tradeoff.tradeoff_curve``) as a job.

        Every edit is a hook inside the job: the session's own edit does not change; on success the
        result becomes ``self.tradeoff``.
        """
        check_records(records_by_category)
        self.adapter.check_layer(layer)
        cases = list(cases)
        if values is not None:
            values = check_sweep(param, values, cases)
        n_tok = max_new_tokens or self.max_new_tokens

        def work(prog):
            return tradeoff_curve(self.adapter, records_by_category, int(layer), cases, param=param, values=values,
                                  mask_cfg=mask_cfg, edit_cfg=edit_cfg, control=control, seed=seed, masks=masks,
                                  max_new_tokens=n_tok, progress=prog)

        def keep(result: dict):
            with self.shared.lock:
                self.tradeoff = result
                self._log("tradeoff", f"trade-off over {param}: {len(result['points'])} points")

        return self._start("tradeoff", work, keep, f"trade-off curve over {param} at layer {layer}")

    def load_tradeoff(self, source) -> dict:
        """A saved trade-off JSON (path, text or bytes) becomes ``self.tradeoff``."""
        res = read_tradeoff(source)
        with self.shared.lock:
            self.tradeoff = res
        return res

    #: Evaluation variants of a session: name -> (evaluate method, uses gates, uses edit).
    EVAL_VARIANTS = {
        "base": (BASELINE, False, False),
        "system_prompt": ("system_prompt", False, False),
        "gates": ("inference_gate", True, False),
        "edit": ("edited", False, True),
    }

    def start_evaluate(self, cases: list[EvalCase], variants: list[str] | None = None,
                       max_new_tokens: int | None = None, runs: dict[str, Run] | None = None,
                       nll: bool = False) -> Job:
        """Evaluate ``cases`` under each variant with ``evaluate.evaluate_cases``.

        Variants: ``base`` (the unedited model), ``system_prompt`` (the in-context defence),
        ``gates`` (this session's gates), ``edit`` (this session's edit), and the keys of ``runs``
        (saved edit runs). The base answers are computed once and reused as every other
        variant's locality reference. The result is ``{"results": {variant: result dict},
        "rows": [per-case rows, each with its "variant"]}``.
        """
        if not cases:
            raise NGError("no cases to evaluate: choose at least one split with cases")
        variants = list(dict.fromkeys(variants or ["base"]))
        runs = dict(runs or {})
        plan = []
        for v in variants:
            if v in self.EVAL_VARIANTS:
                method, use_g, use_d = self.EVAL_VARIANTS[v]
                gates, deltas = (list(self.gates) if use_g else []), (list(self.deltas) if use_d else [])
                if use_g and not gates:
                    raise NGError("the variant 'gates' needs active gates (set them on the Gates page)")
                if use_d and not deltas:
                    raise NGError("the variant 'edit' needs an edit: run or load one first")
                plan.append((v, method, gates, deltas, None))
            elif v in runs:
                if runs[v].kind != "edit":
                    raise NGError(f"{v} is a {runs[v].kind} run, not an edit run")
                plan.append((v, "edited", [], runs[v].deltas(), runs[v].path.name if runs[v].path else v))
            else:
                raise NGError(f"unknown variant {v!r}")
        plan.sort(key=lambda p: p[0] != "base")  # the base first: its answers are everyone's reference
        n_tok = max_new_tokens or self.max_new_tokens
        cases = list(cases)

        def work(prog):
            results, rows, pre = {}, [], None
            for name, method, gates, deltas, run_name in plan:
                res = evaluate_cases(self.adapter, cases, gates=gates, deltas=deltas, method=method,
                                     max_new_tokens=n_tok, progress=prog, pre_answers=pre, nll=nll,
                                     run=run_name, extra={"variant": name})
                if method == BASELINE:  # the reference of the variants after it
                    pre = res
                results[name] = res
                rows.extend(dict(r, variant=name) for r in res["cases"])
            return {"results": results, "rows": rows}

        return self._start("evaluate", work, None, f"evaluate {len(cases)} cases x {len(plan)} variant(s)")
