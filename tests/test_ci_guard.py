"""The conftest hook that fails a CI run when a test of MUST_NOT_SKIP skips, run on a tiny suite of its own."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = {
    "test_app_browser.py": "import pytest\n\n\n@pytest.mark.skipif(True, reason='no chromium here')\n"
                           "def test_app_in_a_browser():\n    pass\n",
    "test_bench_fm.py": "import pytest\n\npytest.importorskip('a_peer_that_is_not_installed')\n\n\n"
                        "def test_peers():\n    pass\n",
    "test_image_metrics.py": "import pytest\n\n\ndef test_inception_extractor():\n    pytest.skip('no fid-helper')\n\n\n"
                             "def test_tf_bilinear_resize():\n    pytest.skip('allowed to skip')\n",
    "test_other.py": "import pytest\n\n\ndef test_passes():\n    pass\n\n\ndef test_may_skip():\n    pytest.skip('fine')\n",
}


@pytest.fixture
def suite(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    for name, text in SUITE.items():
        (tests / name).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the rootdir: node ids read tests/...

    def run(ci: str | None, *files: str):
        env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
        paths = [f"tests/{f}" for f in files or [f for f in SUITE if f != "test_bench_fm.py"]]
        return subprocess.run([sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", *paths],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    return run


def test_outside_ci_the_listed_tests_skip_as_usual(suite):
    proc = suite(None, *SUITE)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 5 skipped" in proc.stdout


def test_in_ci_a_listed_skip_fails_the_run_and_says_why(suite):
    proc = suite("true")
    assert proc.returncode == 1, proc.stdout
    out = proc.stdout
    for nodeid, reason in (("tests/test_app_browser.py::test_app_in_a_browser", "no chromium here"),
                           ("tests/test_image_metrics.py::test_inception_extractor", "no fid-helper")):
        assert f"{nodeid} must not skip in CI" in out and reason in out, (nodeid, out)
    # the tests off the list still skip, and are reported (-rs)
    assert "SKIPPED" in out and "allowed to skip" in out and "fine" in out
    assert "1 failed, 1 passed, 2 skipped, 1 error" in out, out


def test_in_ci_a_listed_file_skipped_whole_stops_the_run(suite):
    """A module-level importorskip skips a file at collection: in CI that is a collection error (pytest exit 2)."""
    proc = suite("true", "test_bench_fm.py", "test_other.py")
    assert proc.returncode == 2, proc.stdout
    assert "tests/test_bench_fm.py must not skip in CI" in proc.stdout and "a_peer_that_is_not_installed" in proc.stdout


def test_ci_other_than_true_is_not_ci(suite):
    assert suite("false").returncode == 0
