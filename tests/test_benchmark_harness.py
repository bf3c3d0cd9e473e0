"""benchmarks.harness: resumable keyed rows, the seconds ledger and results files that name no machine path."""

import doctest
import json
import re

from benchmarks import harness
from benchmarks.harness import KeyedRows, SecondsLedger, atomic_write_json, portable, write_results


def _scorer(calls: list):
    def score(model: str, nfe: int) -> dict:
        calls.append((model, nfe))
        return {"model": model, "nfe": nfe, "fd": 10.0 / nfe}
    return score


def test_a_second_call_computes_only_the_missing_rows(tmp_path):
    path, calls = tmp_path / "rows.json", []
    score = _scorer(calls)
    first = KeyedRows(path, {"n": 100, "seed": 1})
    for nfe in (1, 2):
        first.get_or_compute({"model": "a", "nfe": nfe}, lambda k=nfe: score("a", k))
    atomic_write_json(path, {"n": 100, "seed": 1, "rows": first.rows})
    assert calls == [("a", 1), ("a", 2)]

    second = KeyedRows(path, {"n": 100, "seed": 1})
    for nfe in (1, 2, 4):
        second.get_or_compute({"model": "a", "nfe": nfe}, lambda k=nfe: score("a", k))
    assert calls == [("a", 1), ("a", 2), ("a", 4)]  # only NFE 4 was computed
    assert second.rows[:2] == first.rows and second.rows[2]["fd"] == 2.5


def test_another_protocol_a_cut_file_or_fresh_keeps_nothing(tmp_path):
    path = tmp_path / "rows.json"
    atomic_write_json(path, {"n": 100, "rows": [{"model": "a", "nfe": 1}]})
    assert KeyedRows(path, {"n": 100}).find({"nfe": 1}) == {"model": "a", "nfe": 1}
    assert KeyedRows(path, {"n": 50}).find({"nfe": 1}) is None
    assert KeyedRows(path, {"n": 100}, fresh=True).find({"nfe": 1}) is None
    path.write_text('{"n": 100, "rows": [')
    assert KeyedRows(path, {"n": 100}).previous == []


def test_keys_reach_nested_fields_and_fill_completes_old_rows(tmp_path):
    path = tmp_path / "rows.json"
    atomic_write_json(path, {"date": "then", "rows": [{"model": "a", "scores": {"sha": "x"}},
                                                      {"model": "b", "scores": {"sha": "y"}}]})
    rows = KeyedRows(path, {}, fill=lambda file, row: {**row, "scored": row.get("scored", file["date"])})
    assert rows.find({"scores.sha": "y"}) == {"model": "b", "scores": {"sha": "y"}, "scored": "then"}
    assert rows.find({"scores.sha": "z"}) is None
    rows.rows.append({"model": "a", "new": True})
    assert [r["model"] for r in rows.pending([{"model": "b"}])] == ["a", "b"]  # a partial write keeps b's row


def test_the_seconds_ledger_adds_under_a_lock(tmp_path):
    ledger = SecondsLedger(tmp_path / "runs" / "seconds.json")
    ledger.record("2-RF", 12.5)
    ledger.timed("3-RF", lambda: None)
    assert set(ledger.read()) == {"2-RF", "3-RF"} and ledger.read()["2-RF"] == 12.5
    assert (tmp_path / "runs" / "seconds.lock").is_file()


def test_results_files_name_no_absolute_path_of_the_repository(tmp_path, monkeypatch):
    root = harness.ROOT
    assert portable(f"{root}/src/flowforge") == "src/flowforge"
    assert portable(f"python {root}/benchmarks/x.py --out {root}") == "python benchmarks/x.py --out ."
    assert portable(f"{root}2/src").endswith(f"/{root.name}2/src")  # a directory that only starts alike: not inside
    out = write_results("t", {"args": {"out": str(root / "benchmarks" / "results" / "t.json")}}, tmp_path / "t.json")
    record = json.loads(out.read_text())
    assert record["args"]["out"] == "benchmarks/results/t.json"
    assert str(root) not in out.read_text()
    assert record["machine"]["cpu_capability"]  # torch.backends.cpu.get_cpu_capability()


def test_the_harness_doctests_pass():
    assert doctest.testmod(harness).failed == 0


def test_no_committed_results_file_names_an_absolute_path():
    absolute = re.compile(r"(?:^|[\s='\"(])/[\w.-]+/")  # /work/..., /tmp/..., /home/...: the machine's directories
    for path in sorted(harness.RESULTS.glob("*.json")):
        found = absolute.findall(path.read_text())  # in the JSON text every string opens with a quote
        assert not found, f"{path.name}: {found[:3]}"
