"""bench/gate_toggle_time.py runs end to end on tiny-random: both scopes, and the comparison session gives the
same answers (timings are the bench's business, not the test's)."""
import json

from bench_scripts import load_bench


def test_gate_toggle_bench_runs_and_compares_answers(tmp_path):
    bench = load_bench("gate_toggle_time")
    out = tmp_path / "toggle.json"
    assert bench.main(["--model", "tiny-random", "--quick", "--repeats", "2", "--against-no-reuse",
                       "--data", str(tmp_path / "data"), "--per-category", "3", "--max-new-tokens", "8",
                       "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["max_new_tokens"] == 8 and max(res["all"]["answer_tokens"]) <= 8
    for where in ("subject", "all"):
        assert res[where]["n"] == 2 and len(res[where]["answers"]) == 2
        assert res[f"{where}_same_answers"] is True
    assert res["prefix_memo"]["partial"] >= 1  # gates at every position reused the layers below theirs
