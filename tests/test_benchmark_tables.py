"""The README's benchmark tables say what benchmarks/results/*.json say (benchmarks/render_tables.py --check)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "render_tables.py"


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_readme_tables_are_rendered_from_the_results_files():
    proc = _check()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_a_hand_edited_number_fails_the_check(tmp_path):
    readme = (ROOT / "README.md").read_text()
    marked = re.search(r"<!-- table:flows_vs_peers -->\n(.*?)<!-- /table:flows_vs_peers -->", readme, re.DOTALL)
    assert marked, "README.md has no flows_vs_peers table markers"
    table = marked.group(1)
    edited = table.replace("| flowforge | ", "| flowforge | 1", 1)  # a parameter count gains a digit
    assert edited != table
    (tmp_path / "README.md").write_text(readme.replace(table, edited))
    proc = _check("--readme", str(tmp_path / "README.md"))
    assert proc.returncode == 1, proc.stdout
    assert "tables differ" in proc.stdout


def test_unknown_table_marker_fails_the_check(tmp_path):
    readme = (ROOT / "README.md").read_text() + "\n<!-- table:no_such_table -->\n| a |\n<!-- /table:no_such_table -->\n"
    (tmp_path / "README.md").write_text(readme)
    proc = _check("--readme", str(tmp_path / "README.md"))
    assert proc.returncode == 1 and "no_such_table" in proc.stdout
