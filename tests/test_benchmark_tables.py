"""The benchmark tables of README.md and docs/*.md say what benchmarks/results/*.json say
(python -m benchmarks.render_tables --check), each table is on exactly one page, and each registered table has
its own module."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"<!-- table:flows_vs_peers -->\n(.*?)<!-- /table:flows_vs_peers -->", re.DOTALL)


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.render_tables", "--check", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=ROOT)


def _copy_pages(tmp_path: Path) -> Path:
    """README.md and docs/*.md copied under ``tmp_path``, the root to point ``--root`` at."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    (tmp_path / "docs").mkdir()
    for page in (ROOT / "docs").glob("*.md"):
        shutil.copy(page, tmp_path / "docs" / page.name)
    return tmp_path


def _page_with(root: Path, pattern: re.Pattern) -> Path:
    found = [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if pattern.search(p.read_text())]
    assert len(found) == 1, f"flows_vs_peers markers on {len(found)} pages"
    return found[0]


def test_tables_are_rendered_from_the_results_files():
    proc = _check()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_a_hand_edited_number_fails_the_check(tmp_path):
    root = _copy_pages(tmp_path)
    page = _page_with(root, MARKED)
    text = page.read_text()
    table = MARKED.search(text).group(1)
    edited = table.replace("| flowforge | ", "| flowforge | 1", 1)  # a parameter count gains a digit
    assert edited != table
    page.write_text(text.replace(table, edited))
    proc = _check("--root", str(root))
    assert proc.returncode == 1, proc.stdout
    assert "tables differ" in proc.stdout and page.name in proc.stdout


def test_unknown_table_marker_fails_the_check(tmp_path):
    root = _copy_pages(tmp_path)
    page = root / "docs" / "benchmarks.md"
    page.write_text(page.read_text() + "\n<!-- table:no_such_table -->\n| a |\n<!-- /table:no_such_table -->\n")
    proc = _check("--root", str(root))
    assert proc.returncode == 1 and "no_such_table" in proc.stdout


def test_a_table_on_two_pages_fails_the_check(tmp_path):
    root = _copy_pages(tmp_path)
    marked = MARKED.search(_page_with(root, MARKED).read_text()).group(0)
    (root / "README.md").write_text((root / "README.md").read_text() + "\n" + marked + "\n")
    (root / "docs" / "benchmarks.md").write_text((root / "docs" / "benchmarks.md").read_text() + "\n" + marked + "\n")
    proc = _check("--root", str(root))
    assert proc.returncode == 1 and "flows_vs_peers: marked" in proc.stdout


def test_results_without_markers_fail_the_check(tmp_path):
    root = _copy_pages(tmp_path)
    page = _page_with(root, MARKED)
    page.write_text(MARKED.sub("", page.read_text()))
    proc = _check("--root", str(root))
    assert proc.returncode == 1 and "no page has <!-- table:flows_vs_peers --> markers" in proc.stdout


def test_every_table_renders_from_a_module_of_benchmarks_tables():
    from benchmarks.tables import TABLES

    for name, spec in TABLES.items():
        module = spec.render.__module__
        assert module.startswith("benchmarks.tables.") and module != "benchmarks.tables.format", name
        assert all((ROOT / "benchmarks" / "results" / f"{s}.json").is_file() for s in spec.sources), name
