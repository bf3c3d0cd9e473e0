"""Smoke test of benchmarks.fm_vs_peers: the --quick mode runs and writes finite numbers."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


@pytest.mark.slow
def test_fm_vs_peers_quick_writes_finite_numbers(tmp_path):
    pytest.importorskip("torchcfm")
    pytest.importorskip("flow_matching")
    pytest.importorskip("torchdiffeq")  # flow_matching's ODESolver integrates with it
    out = tmp_path / "fm.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.fm_vs_peers", "--quick", "--datasets", "moons", "--out",
                           str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    rep = record["results"]["moons"]["repeats"][0]
    assert set(rep["libs"]) == {"flowforge", "torchcfm", "flow_matching"}
    for name, lib in rep["libs"].items():
        assert set(lib["energy"]) == {"1", "4"}, name
        assert lib["nfe_counted"] == {"1": 1, "4": 4}, name  # each sampler spent exactly the NFE asked for
        assert len(lib["sliced_w2"]) == 1, name
    # the three trained on the same (x_t, t) pairs and flowforge used the handed-in draws
    assert all(v < 1e-5 for v in rep["pair_check"].values())
    values = list(_numbers(record["results"]))
    assert values and all(math.isfinite(v) for v in values)
    assert "| flowforge |" in proc.stdout and "| noise floor" in proc.stdout
