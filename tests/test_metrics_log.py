"""``read_metrics`` against the exact records expected: what a log holds, and what it skips."""

import json
import math

from flowforge.runs.metrics_log import MetricsLog, read_metrics

GOOD = [
    {"step": 5, "loss": 1.25, "seconds": 0.5, "grad_norm": 3.0},
    {"step": 10, "kind": "val", "nll": 2.5, "n": 100},
    {"step": 10, "loss": 1.0, "seconds": 1},  # an integer number is a number
    {"step": 10, "kind": "eval", "energy": float("nan")},  # a kind with no required numbers keeps what it has
]
BAD = [
    '{"step": 6, "loss": NaN, "seconds": 0.5}',  # a diverged step: its loss is not a number
    '{"step": 7, "loss": Infinity, "seconds": 0.5}',
    '{"step": 8, "loss": 1.0, "seconds": -Infinity}',
    '{"step": 9, "kind": "val", "nll": NaN}',
    '{"step": 9, "kind": "val"}',
    '{"step": 9, "loss": null, "seconds": 1}',
    '{"step": 9, "loss": "1.0", "seconds": 1}',
    '{"step": 9, "loss": true, "seconds": 1}',
    '{"step": 9, "loss": 1.0}',
    '{"loss": 1.0, "seconds": 1}',
    '{"step": "9", "loss": 1.0, "seconds": 1}',
    '{"step": 9.0, "loss": 1.0, "seconds": 1}',
    '{"step": true, "loss": 1.0, "seconds": 1}',
    '[1, 2]',
    '{"step": 11, "loss": 1.0, "sec',  # a torn last line
]


def test_read_metrics_returns_exactly_the_well_formed_records(tmp_path):
    lines = [json.dumps(GOOD[0]), BAD[0], BAD[1], json.dumps(GOOD[1]), *BAD[2:-1], json.dumps(GOOD[2]),
             json.dumps(GOOD[3]), BAD[-1]]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    records = read_metrics(tmp_path)
    assert [{k: v for k, v in r.items() if k != "energy"} for r in records] == \
        [{k: v for k, v in r.items() if k != "energy"} for r in GOOD]
    assert math.isnan(records[-1]["energy"])


def test_each_bad_line_alone_is_skipped(tmp_path):
    for line in BAD:
        (tmp_path / "metrics.jsonl").write_text(json.dumps(GOOD[0]) + "\n" + line + "\n")
        assert read_metrics(tmp_path) == [GOOD[0]], line


def test_no_log_is_no_records(tmp_path):
    assert read_metrics(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text("")
    assert read_metrics(tmp_path) == []


def test_metrics_log_writes_what_read_metrics_reads_and_truncates_on_resume(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (5, 10, 15):
        log.log({"step": step, "loss": step / 10, "seconds": 0.1 * step})
    log.log({"step": 15, "kind": "val", "nll": 1.5})
    log.log({"step": 20, "loss": float("nan"), "seconds": 2.0})  # written (the log keeps what happened), never read
    log.close()
    assert [(r["step"], r.get("kind", "train")) for r in read_metrics(tmp_path)] == \
        [(5, "train"), (10, "train"), (15, "train"), (15, "val")]
    MetricsLog(tmp_path, tensorboard=False, truncate_after=10).close()
    assert read_metrics(tmp_path) == [{"step": 5, "loss": 0.5, "seconds": 0.5}, {"step": 10, "loss": 1.0, "seconds": 1.0}]
