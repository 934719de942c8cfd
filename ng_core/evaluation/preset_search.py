"""``ng preset-search``: choose a preset on the world set's validation part, report it on the test part.

Why: presets chosen on the project's own templates and drawing style did not hold on cards and questions from
outside. Here every candidate setting is an edit trained as ``ng edit`` trains it (generated main-family train
images, the project's templates), then judged by ground truth on the world set (:mod:`ng_core.data.world_set`:
held-out drawing style, photographs, held-out wording; :mod:`ng_core.evaluation.world_metrics`). The choice reads
the **validation** part only; the **test** part is for reporting the chosen setting (``part="test"``).

Each candidate and seed is cached in ``OUT/<part>/<candidate>-s<seed>.json`` (answers and numbers; its edit is a run
bundle in ``OUT/runs/<candidate>-s<seed>``), the unedited model's answers in ``OUT/<part>/unedited.json``, so an interrupted search resumes where it stopped; like
``ng sweep``, the edits reuse the library's own pipeline (:func:`~ng_core.method.pipeline.edit_run`) and the
numbers come from :func:`~ng_core.evaluation.evaluate.evaluate_cases`.

The choice rule (:func:`choose`): the candidate closest to meeting every target (the smallest sum of shortfalls
below the bars, :func:`shortfall`, so that refusing more cannot buy losing harmless answers); ties go to the one
meeting more targets, then to the faster edit. A time limit (``max_seconds``, the demo's) rules out slower
candidates first.

``ng --help`` reads the grids from this module, so what loads torch is imported inside the functions that run edits.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ng_core.data.constants import ALL_CATEGORIES
from ng_core.data.records import ImageRecord
from ng_core.data.world_set import world_cases
from ng_core.errors import NGError
from ng_core.evaluation.preset_search_render import render
from ng_core.evaluation.probe_cases import general_question_cases
from ng_core.evaluation.world_metrics import check_targets, world_numbers
from ng_core.method.registry import LEARNED, RANDOM_CONTROL
from ng_core.storage.atomic_file import write_atomic
from ng_core.storage.safe_files import read_json

#: Part of a general-question set that goes with each world-set part (alternate questions).
GENERAL_PARTS = {"validation": 0, "test": 1}


class PresetSearchError(NGError):
    """A preset search cannot run with these settings."""


@dataclass(frozen=True)
class Candidate:
    """One setting to try: overrides of the base preset (``None`` keeps the preset's value).

    ``mix_families``: the edit's paraphrases alternate between the record's train templates and its held-out
    template twin (the project's other template families), a lever for wording generalisation;
    ``mix_neighbours``: its benign neighbours alternate the same way (so the locality term sees both wordings);
    ``kl_factor``: the weight of that neighbour term (the authors' 1.25);
    ``same_image``: harmless questions about the edit's own image per edit (``EditConfig.same_image_questions``);
    ``benign``: harmless questions about benign images per edit (``EditConfig.benign_image_questions``)."""

    name: str
    lr: float | None = None
    steps: int | None = None
    questions: int | None = None
    images: int | None = None
    scope: str | None = None
    topk: float | None = None
    mask_steps: int | None = None
    layer: int | None = None
    general_weight: float | None = None
    kl_factor: float | None = None
    mix_families: bool = False
    mix_neighbours: bool = False
    same_image: int | None = None
    benign: int | None = None

    def overrides(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "name" and v not in (None, False)}


@dataclass
class SearchConfig:
    """What a preset search edits and how it judges."""

    base: str | None = None  # preset name or file (None: the model's preset); "demo" for the demo's
    categories: tuple = ("passport", "phone_number", "receipt", "student_id")  # edited together, in one run
    world_categories: tuple = ALL_CATEGORIES
    per_category: int = 3  # world-set images per category
    n_privacy: int = 2  # privacy questions per world image
    seeds: tuple = (0,)
    max_new_tokens: int = 24
    max_seconds: float | None = None  # candidates whose edit takes longer are not chosen (the demo's budget)
    controls: bool = False  # also run the random-gate control of each candidate and seed
    data_seed: int = 0
    train_per_category: int = 6  # images per category of the generated train data (a third are train images)


def _alternate(a, b) -> tuple:
    return tuple(x for pair in zip(a, b) for x in pair)


def mixed_records(records: list[ImageRecord], twins: dict, neighbours: bool = False) -> list[ImageRecord]:
    """``records`` whose paraphrases (and with ``neighbours`` their benign neighbours) alternate with those of
    their held-out-template twin (same image)."""
    out = []
    for r in records:
        t = twins.get((str(r.image), r.case_id))
        if t is None:
            out.append(r)
            continue
        changes = {"paraphrases": _alternate(r.paraphrases, t.paraphrases)}
        if neighbours:
            changes["neighbours"] = _alternate(r.neighbours, t.neighbours)
        out.append(replace(r, **changes))
    return out


def train_set(dataset, categories, n_images: int, mix: bool, mix_neighbours: bool = False) -> dict:
    """{category: train records} as ``ng edit`` picks them (first ``n_images`` of split train)."""
    out = {}
    for c in categories:
        recs = dataset.records(c, "train")[:n_images]
        if not recs:
            raise PresetSearchError(f"the train data has no train images of {c!r}")
        if mix or mix_neighbours:
            twins = {(str(r.image), r.case_id): r for r in dataset.records(c, "heldout_templates")}
            recs = mixed_records(recs, twins, mix_neighbours)
            if not mix:  # neighbours only: keep the train paraphrases
                plain = dataset.records(c, "train")[:n_images]
                recs = [replace(m, paraphrases=p.paraphrases) for m, p in zip(recs, plain)]
        out[c] = recs
    return out


def resolved(adapter, cfg: SearchConfig, cand: Candidate, seed: int):
    """The base preset with the candidate's overrides (:func:`ng_core.method.presets.resolve`)."""
    from ng_core.method.presets import load_preset, resolve  # deferred: torch, keeps ng --help fast

    p = load_preset(adapter.model_id, adapter.n_layers, override=cfg.base)
    return resolve(p, layer=cand.layer, max_images=cand.images, seed=seed,
                   mask={"topk": cand.topk, "steps": cand.mask_steps},
                   edit={"lr": cand.lr, "steps": cand.steps, "gate_scope": cand.scope,
                         "questions_per_image": cand.questions, "general_weight": cand.general_weight,
                         "kl_factor": cand.kl_factor, "same_image_questions": cand.same_image,
                         "benign_image_questions": cand.benign})


def general_cases(part: str, images) -> list:
    """The held-out general questions, every other one for each part."""
    cs = general_question_cases(images)
    return [c for i, c in enumerate(cs) if i % 2 == GENERAL_PARTS[part]]


def _answers(adapter, cases, deltas, method: str, max_new_tokens: int) -> list[dict]:
    from ng_core.evaluation.evaluate import evaluate_cases  # deferred: torch, keeps ng --help fast

    res = evaluate_cases(adapter, cases, deltas=deltas, method=method, nll=False, locality=False,
                         max_new_tokens=max_new_tokens)
    return res["cases"]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(obj, indent=1, default=str) + "\n")


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _image_name(image, out: Path | None) -> str:
    """``image`` as a cache key: relative to the search folder ``out`` when it lies inside it, so the same search
    reached as ``out/x`` or ``/abs/out/x`` (or moved) keeps its cache."""
    if image is None or out is None:
        return str(image)
    try:
        return Path(image).resolve().relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return str(image)


def cases_key(cases, cfg: SearchConfig, out: Path | None = None) -> str:
    """What a cached answer depends on besides the model and the edit: the cases (images named relative to the
    search folder ``out``) and the decoding."""
    h = hashlib.sha256(json.dumps([cfg.max_new_tokens, list(cfg.categories)]).encode())
    for c in cases:
        h.update(f"{_image_name(c.image, out)}\0{c.prompt}\0{c.expect}\0".encode())
    return h.hexdigest()[:16]


def unedited(adapter, cfg: SearchConfig, part: str, cases, gen, out: Path, log=print) -> dict:
    """The unedited model's rows on ``part`` (cached)."""
    path = out / part / "unedited.json"
    got = _read(path)
    key = cases_key(cases + gen, cfg, out)
    if got and got.get("fingerprint") == adapter.fingerprint() and got.get("cases_key") == key:
        return got
    t = time.perf_counter()
    log(f"[{part}] unedited: answering {len(cases)} world cases and {len(gen)} general questions")
    rows = _answers(adapter, cases + gen, (), "unedited", cfg.max_new_tokens)
    got = {"fingerprint": adapter.fingerprint(), "cases_key": key, "n": len(rows), "rows": rows[: len(cases)],
           "general": rows[len(cases):], "seconds": round(time.perf_counter() - t, 1)}
    got["numbers"] = _numbers(got, cfg, None)
    _write(path, got)
    return got


def _numbers(got: dict, cfg: SearchConfig, pre: dict | None) -> dict:
    return world_numbers(got["rows"], cfg.categories, pre["rows"] if pre else None, got["general"])


def _same(stored, cand: Candidate) -> bool:
    """Is a cached candidate this one? Levers added since it was cached count as unset (their defaults)."""
    if not isinstance(stored, dict):
        return False
    return ({k: v for k, v in stored.items() if v not in (None, False)}
            == {k: v for k, v in asdict(cand).items() if v not in (None, False)})


def run_candidate(adapter, cfg: SearchConfig, cand: Candidate, seed: int, part: str, dataset, cases, gen,
                  pre: dict, out: Path, method: str = LEARNED, masks=None, log=print) -> dict:
    """One candidate edit (or its random-gate control) at one seed, judged on ``part`` (cached)."""
    from ng_core.method.pipeline import edit_run  # deferred: torch, keeps ng --help fast

    tag = "" if method == LEARNED else f"-{method}"
    path = out / part / f"{cand.name}{tag}-s{seed}.json"
    got = _read(path)
    key = cases_key(cases + gen, cfg, out)
    if (got and got.get("fingerprint") == adapter.fingerprint() and _same(got.get("candidate"), cand)
            and got.get("cases_key") == key):
        return got
    r = resolved(adapter, cfg, cand, seed)
    both = cand.mix_families and cand.mix_neighbours  # the preset's own lever (EditConfig.mix_wordings)
    recs = train_set(dataset, cfg.categories, r.max_images, cand.mix_families and not both,
                     cand.mix_neighbours and not both)
    log(f"[{part}] {cand.name}{tag} seed {seed}: editing {', '.join(cfg.categories)} "
        f"({r.max_images} image(s) x {r.edit.questions_per_image} question(s), lr {r.edit.lr:g}, "
        f"{r.edit.gate_scope}, layer {r.layer})")
    t = time.perf_counter()
    edit_cfg = replace(r.edit, method=method, mix_wordings=r.edit.mix_wordings or both)
    run = edit_run(adapter, recs, int(r.layer), r.mask, edit_cfg, seed=seed, masks=masks)
    edit_s = time.perf_counter() - t
    run.config["preset_search"] = {"candidate": asdict(cand), "part": part, "base": cfg.base}
    run.save(out / "runs" / f"{cand.name}{tag}-s{seed}")  # a run bundle: `ng ask --run`, `ng evaluate --run`
    rows = _answers(adapter, cases + gen, run.deltas(), method, cfg.max_new_tokens)
    got = {"fingerprint": adapter.fingerprint(), "cases_key": key, "candidate": asdict(cand), "method": method,
           "seed": seed,
           "part": part, "edit_seconds": round(edit_s, 1), "layer": int(r.layer),
           "mask": r.mask.to_dict(), "edit": edit_cfg.to_dict(), "max_images": r.max_images,
           "gate_sizes": {c: d.get("gate_size") for c, d in run.metrics.get("diagnostics", {}).items()},
           "rows": rows[: len(cases)], "general": rows[len(cases):]}
    got["numbers"] = _numbers(got, cfg, pre)
    _write(path, got)
    if method == LEARNED and cfg.controls:
        got["_masks"] = run.masks()  # the control gates a random set of the same size (not written; a cached
        # candidate's control localizes again, with the same seed and so the same masks)
    return got


def _summary(results: list[dict]) -> dict:
    """Mean (and spread) of each headline number over seeds."""
    keys = ("leak_rate", "leaks_removed", "refusal_edited", "refusal_never_edited", "harmless_right",
            "harmless_right_change", "harmless_refused", "general_answered")
    out = {}
    for k in keys:
        vals = [r["numbers"].get(k) for r in results if r["numbers"].get(k) is not None]
        if vals:
            m = sum(vals) / len(vals)
            sd = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
            out[k] = {"mean": round(m, 4), "sd": round(sd, 4), "values": vals}
    out["edit_seconds"] = round(sum(r["edit_seconds"] for r in results) / len(results), 1)
    out["harmless_leaked"] = sum(r["numbers"].get("harmless_leaked", 0) for r in results)
    out["targets"] = check_targets({k: v["mean"] for k, v in out.items() if isinstance(v, dict) and "mean" in v})
    return out


def shortfall(targets: dict) -> float:
    """How far a setting is from meeting every target: the sum, over the targets it can be checked against, of
    how far its value lies below the bar (0 when all are met). One point of harmless answers lost counts as
    much as one point of refusal missing."""
    return round(sum(max(0.0, t["bar"] - t["value"]) for t in targets.values() if t.get("value") is not None), 4)


def choose(summaries: dict, max_seconds: float | None = None) -> str | None:
    """The chosen candidate's name (see the module docstring for the rule)."""
    def key(item):
        name, s = item
        met = sum(1 for t in s["targets"].values() if t["met"])
        return (-shortfall(s["targets"]), met, -s["edit_seconds"])

    ok = {n: s for n, s in summaries.items() if max_seconds is None or s["edit_seconds"] <= max_seconds}
    return max(ok.items(), key=key)[0] if ok else None


def search(adapter, cfg: SearchConfig, candidates: list[Candidate], dataset, out, part: str = "validation",
           log=print) -> dict:
    """Run every candidate over the seeds on ``part``; write ``OUT/<part>/search.json`` and return it."""
    out = Path(out)
    if not candidates:
        raise PresetSearchError("no candidates to try")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise PresetSearchError(f"candidate names must differ: {', '.join(names)}")
    missing = [c for c in cfg.categories if not dataset.records(c, "train")]
    if missing:
        raise PresetSearchError(f"the train data has no train images of {', '.join(missing)}")
    t0 = time.perf_counter()
    cases = world_cases(out / "world" / part, part, cfg.world_categories, cfg.per_category, cfg.n_privacy,
                        seed=cfg.data_seed)
    imgs = sorted({str(c.image) for c in cases if c.category in cfg.categories})
    gen = general_cases(part, imgs)
    pre = unedited(adapter, cfg, part, cases, gen, out, log)
    results: dict[str, list[dict]] = {}
    controls: dict[str, list[dict]] = {}
    for cand in candidates:
        for seed in cfg.seeds:
            got = run_candidate(adapter, cfg, cand, seed, part, dataset, cases, gen, pre, out, log=log)
            results.setdefault(cand.name, []).append(got)
            if cfg.controls:
                ctrl = run_candidate(adapter, cfg, cand, seed, part, dataset, cases, gen, pre, out,
                                     method=RANDOM_CONTROL, masks=got.pop("_masks", None), log=log)
                controls.setdefault(cand.name, []).append(ctrl)
            n = got["numbers"]
            log(f"[{part}] {cand.name} seed {seed}: leaks removed {n.get('leaks_removed')}, refusal edited "
                f"{n.get('refusal_edited')}, never edited {n.get('refusal_never_edited')}, harmless right "
                f"{n.get('harmless_right')} ({n.get('harmless_right_change')}), general "
                f"{n.get('general_answered')}, edit {got['edit_seconds']} s")
    summaries = {n: _summary(rs) for n, rs in results.items()}
    result = {
        "part": part, "out": str(out), "config": {**asdict(cfg), "seeds": list(cfg.seeds)},
        "model": {"id": adapter.model_id, "fingerprint": adapter.fingerprint()},
        "candidates": [asdict(c) for c in candidates],
        "unedited": pre["numbers"], "summaries": summaries,
        "controls": {n: _summary(rs) for n, rs in controls.items()},
        "chosen": choose(summaries, cfg.max_seconds) if part == "validation" else None,
        "shortfall": {n: shortfall(s["targets"]) for n, s in summaries.items()},
        "seconds": round(time.perf_counter() - t0, 1),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    _write(out / part / "search.json", result)
    (out / part / "SEARCH.md").write_text(render(result))
    return result




#: The shipped grids (``ng preset-search --grid NAME``). ``default``: the model's preset, edited on four categories
#: at once; ``demo``: the guided demo's speed setting (one category, two images, at most 60 s per edit).
GRIDS: dict[str, dict] = {
    "default": {
        "config": {"base": None, "categories": ("passport", "phone_number", "receipt", "student_id")},
        "candidates": (
            Candidate("preset_2x2", images=2, questions=2, mask_steps=8),
            Candidate("lr3e-3_rows20", lr=3e-3, images=2, questions=2, mask_steps=8, scope="weight_rows", topk=0.2),
            Candidate("lr3e-3_rows20_mix", lr=3e-3, images=2, questions=2, mask_steps=8, scope="weight_rows",
                      topk=0.2, mix_families=True),
            Candidate("lr1e-3_rows20_mix", lr=1e-3, images=2, questions=2, mask_steps=8, scope="weight_rows",
                      topk=0.2, mix_families=True),
            Candidate("lr3e-3_subject", lr=3e-3, images=2, questions=2, mask_steps=8, scope="subject_position"),
            Candidate("lr3e-3_rows20_mixall", lr=3e-3, images=2, questions=2, mask_steps=8, scope="weight_rows",
                      topk=0.2, mix_families=True, mix_neighbours=True),
            Candidate("lr3e-3_rows20_mixall_kl2.5", lr=3e-3, images=2, questions=2, mask_steps=8,
                      scope="weight_rows", topk=0.2, mix_families=True, mix_neighbours=True, kl_factor=2.5),
            # on a validation part with harmless requests: harmless questions about the edit's own image in the loss
            Candidate("lr3e-3_rows20_same2", lr=3e-3, images=2, questions=2, mask_steps=8, scope="weight_rows",
                      topk=0.2, same_image=2),
            # most harmless answers it still lost on validation were about images that are no edited document
            # (charts, landscapes, vehicles, bank cards): harmless questions about benign images drawn for it.
            # Measured: no better on validation (harmless -1.7 points either way), 2.8x the edit time; not adopted
            Candidate("lr3e-3_rows20_same2_benign2", lr=3e-3, images=2, questions=2, mask_steps=8,
                      scope="weight_rows", topk=0.2, same_image=2, benign=2),
        ),
    },
    "demo": {
        # judged on passports (the category it edits), charts and scenes (harmless only) and general questions
        "config": {"base": "demo", "categories": ("passport",), "max_seconds": 60.0,
                   "world_categories": ("passport", "chart", "scene"), "per_category": 6,
                   "train_per_category": 12},  # the dashboard's sample dataset, whose cards the demo edits on
        "candidates": (
            Candidate("demo_preset"),
            Candidate("lr3e-3_rows20_q1", lr=3e-3, scope="weight_rows", topk=0.2),
            Candidate("lr3e-3_rows20_q2", lr=3e-3, scope="weight_rows", topk=0.2, questions=2),
            Candidate("lr3e-3_rows20_q2_mix", lr=3e-3, scope="weight_rows", topk=0.2, questions=2, mix_families=True),
            Candidate("lr3e-3_subject_q1", lr=3e-3, scope="subject_position"),
            # second round (refusal stayed at 50-58% on validation in the first): stronger or wider edits
            Candidate("lr1e-2_rows20_q1", lr=1e-2, scope="weight_rows", topk=0.2),
            Candidate("lr3e-3_rows20_q1_steps20", lr=3e-3, scope="weight_rows", topk=0.2, steps=20),
            Candidate("lr3e-3_rows40_q1", lr=3e-3, scope="weight_rows", topk=0.4),
            Candidate("lr3e-3_all20_q1", lr=3e-3, scope="all_positions", topk=0.2),
            # third round: mixed wordings reached 92% refusal but refused harmless questions too; the neighbours
            # in both wordings, a heavier neighbour term, and fewer edits to stay within the demo's time
            Candidate("i1_q2_mixall", lr=3e-3, scope="weight_rows", topk=0.2, images=1, questions=2,
                      mix_families=True, mix_neighbours=True),
            Candidate("i1_q2_mixall_kl2.5", lr=3e-3, scope="weight_rows", topk=0.2, images=1, questions=2,
                      mix_families=True, mix_neighbours=True, kl_factor=2.5),
            Candidate("q2_mixall_steps6", lr=3e-3, scope="weight_rows", topk=0.2, questions=2, steps=6,
                      mix_families=True, mix_neighbours=True),
            Candidate("q2_mixall_kl2.5_steps6", lr=3e-3, scope="weight_rows", topk=0.2, questions=2, steps=6,
                      mix_families=True, mix_neighbours=True, kl_factor=2.5),
            # fourth round, on a validation part with harmless requests (which the test part's losses were):
            # harmless questions about the edit's own image (what it is, its colour) in the loss
            Candidate("all20_q1_same1", lr=3e-3, scope="all_positions", topk=0.2, same_image=1),
            Candidate("all20_q1_same2", lr=3e-3, scope="all_positions", topk=0.2, same_image=2),
            Candidate("rows20_q2_mix_same2", lr=3e-3, scope="weight_rows", topk=0.2, questions=2,
                      mix_families=True, same_image=2),
            Candidate("all20_q2_mix_same2", lr=3e-3, scope="all_positions", topk=0.2, questions=2,
                      mix_families=True, same_image=2),
            Candidate("lr1e-2_all20_q1_same2", lr=1e-2, scope="all_positions", topk=0.2, same_image=2),
            # fifth round: the same-image questions kept harmless answers (-6 points) at lr 1e-2; more refusal
            Candidate("lr1e-2_rows20_q1_same2", lr=1e-2, scope="weight_rows", topk=0.2, same_image=2),
            Candidate("lr1e-2_all20_q2_same2", lr=1e-2, scope="all_positions", topk=0.2, questions=2, same_image=2),
            Candidate("lr3e-2_all20_q1_same2", lr=3e-2, scope="all_positions", topk=0.2, same_image=2),
            # sixth round: its harmless losses on validation were charts and landscapes; benign images in the loss.
            # Measured: refusal 83% -> 92%, harmless -19 -> -22 points, 1.5x the edit time; not adopted (the demo's
            # edit already misses its time budget): docs/results/preset-search/demo/validation-benign/
            Candidate("lr3e-2_all20_q1_same2_benign2", lr=3e-2, scope="all_positions", topk=0.2, same_image=2,
                      benign=2),
            Candidate("lr3e-2_all20_q1_same1_benign2", lr=3e-2, scope="all_positions", topk=0.2, same_image=1,
                      benign=2),
        ),
    },
}


def grid(name: str) -> tuple[dict, list[Candidate]]:
    """(config overrides, candidates) of a shipped grid, or of a JSON file ``{"config": {...}, "candidates":
    [{"name": ..., "lr": ...}, ...]}``."""
    if name in GRIDS:
        g = GRIDS[name]
        return dict(g["config"]), list(g["candidates"])
    if not Path(name).is_file():
        raise PresetSearchError(f"unknown grid {name!r}: use one of {', '.join(GRIDS)} or a JSON file")
    data = read_json(name, f"grid file {name}", PresetSearchError, 1 << 20)
    if not isinstance(data, dict) or not isinstance(data.get("candidates"), list):
        raise PresetSearchError(f"{name}: a grid file is an object with a list 'candidates'")
    known = set(Candidate.__dataclass_fields__)
    cands = []
    for i, c in enumerate(data["candidates"]):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or set(c) - known:
            raise PresetSearchError(f"{name}: candidate {i} must be an object with a 'name' and only the keys "
                                    f"{', '.join(sorted(known))}")
        cands.append(Candidate(**c))
    cfg = data.get("config") or {}
    if not isinstance(cfg, dict) or set(cfg) - set(SearchConfig.__dataclass_fields__):
        raise PresetSearchError(f"{name}: 'config' must be an object with keys of "
                                f"{', '.join(SearchConfig.__dataclass_fields__)}")
    return cfg, cands


#: The numbers a preset's ``measured`` object keeps (mean and spread over seeds).
MEASURED_KEYS = ("leak_rate", "leaks_removed", "refusal_edited", "refusal_never_edited", "harmless_right",
                 "harmless_right_change", "harmless_refused", "general_answered")


def _short(summary: dict) -> dict:
    return {k: summary[k] for k in MEASURED_KEYS if k in summary}


def preset_from_search(base_raw: dict, test: dict, validation: dict | None, name: str, evidence: str,
                       command: str) -> dict:
    """A preset file for candidate ``name``: the base preset's own keys (``match``, ``demo``...), the setting the
    candidate resolved to, and ``measured`` (its numbers on the test part, the random-gate control's when run,
    the targets, the validation numbers it was chosen on). ``test`` and ``validation`` are search results."""
    if name not in test["summaries"]:
        raise PresetSearchError(f"the test part has no candidate {name!r}; run it with --part test --only {name}")
    cell = _read(Path(test["out"]) / "test" / f"{name}-s{test['config']['seeds'][0]}.json") if "out" in test else None
    if cell is None:
        raise PresetSearchError(f"no cached test cell of {name!r}")
    drop = {"method", "seed", "schedule"}
    out = {k: v for k, v in base_raw.items() if k not in ("description", "measured", "layer_fraction")}
    out["layer"] = cell["layer"]
    out["mask"] = {k: v for k, v in cell["mask"].items() if k not in drop}
    out["edit"] = {k: v for k, v in cell["edit"].items() if k not in drop}
    out["max_images"] = cell["max_images"]
    s = test["summaries"][name]
    measured = {"part": "test", "seeds": list(test["config"]["seeds"]),
                "edited_categories": list(test["config"]["categories"]),
                "numbers": _short(s), "targets": s["targets"], "edit_seconds": s["edit_seconds"],
                "harmless_leaked": s.get("harmless_leaked", 0),
                "unedited": {k: test["unedited"].get(k) for k in ("leak_rate", "harmless_right", "general_answered",
                                                                   "n_privacy", "n_harmless")},
                "control": _short(test["controls"][name]) if name in test.get("controls", {}) else None,
                "evidence": evidence, "command": command, "model_fingerprint": test["model"]["fingerprint"]}
    if validation:
        measured["chosen_on_validation"] = {
            "chosen": validation.get("chosen"),
            "candidates": {n: {k: (v.get("mean") if isinstance(v, dict) else v) for k, v in _short(vs).items()}
                           | {"edit_seconds": vs["edit_seconds"]} for n, vs in validation["summaries"].items()}}
    met = [k for k, t in s["targets"].items() if t["met"]]
    missed = [k for k, t in s["targets"].items() if t["met"] is False]
    out["description"] = (
        f"Chosen with `ng preset-search` on the world set's validation part (candidate {name}), measured on its "
        f"test part (held-out drawing style, photographed cards, held-out wordings no choice saw; "
        f"{len(measured['seeds'])} seed(s)): targets met: {', '.join(met) or 'none'}; missed: "
        f"{', '.join(missed) or 'none'}. The numbers are in 'measured'; evidence: {evidence}.")
    out["measured"] = measured
    return out


__all__ = ["GRIDS", "preset_from_search", "Candidate", "PresetSearchError", "SearchConfig", "choose", "grid", "mixed_records", "search",
           "train_set"]
