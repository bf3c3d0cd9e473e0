"""Every code example of the documentation runs: README.md and each docs/*.md page.

The convention, read from each fenced block's info string (```LANG ATTRIBUTES):

- ``python``: executed. A page's Python blocks run in order in one namespace, in a fresh temporary working
  directory that holds a link to the repository's ``configs/``, so ``runs/...`` land there. The examples carry
  their own tiny budgets (``train.steps=50``).
- ``bash`` / ``console``: every command is a ``flowforge ...`` command, run in the same directory, in order with
  the page's Python blocks, through ``flowforge.cli.main`` in this process (no interpreter start-up per
  command). In ``bash`` blocks each command must exit 0; in ``console`` blocks, lines starting with ``$ `` are
  commands and the lines after each are output that must appear in what it printed.
- ``text``, ``yaml``, ``json``, ``toml``: data, not code; nothing to run.
- A ``python``, ``bash`` or ``console`` block that is not to be run says so, visibly, in its title, which the
  site shows above the block: ```bash title="not run in tests: trains for 53 min"```. The reason after the colon
  may not be empty.

Anything else fails the test: a fence with no language or an unknown one, or a ``bash`` line that is not a
``flowforge`` command in a block without the mark. So no block is skipped silently.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

RUN = {"python", "bash", "console"}
DATA = {"text", "yaml", "json", "toml"}
NOT_RUN = re.compile(r'title="not run in tests: *(?P<reason>[^"]*)"')
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, the reason it is not run (None: it runs), its code, its line."""

    lang: str
    skip_reason: str | None
    code: str
    line: int


def blocks(text: str, where: str) -> list[Block]:
    """The fenced blocks of a Markdown page, with the convention above checked."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, fence, info = i + 1, len(m["indent"]), m["fence"], m["info"].strip()
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][indent:])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{where}:{start}: the block opened here is never closed")
        i += 1
        lang = info.split()[0] if info else ""
        if lang not in RUN | DATA:
            raise AssertionError(f"{where}:{start}: a fenced block needs a language from {sorted(RUN | DATA)}; got "
                                 f"{info!r} (see tests/test_docs_examples.py)")
        mark = NOT_RUN.search(info)
        if mark and not mark["reason"].strip():
            raise AssertionError(f"{where}:{start}: 'not run in tests:' needs a reason")
        out.append(Block(lang, mark["reason"].strip() if mark else None, "\n".join(body) + "\n", start))
    return out


def commands(block: Block, where: str) -> list[tuple[list[str], list[str]]]:
    """``(argv after 'flowforge', expected output lines)`` of each command of a shell block."""
    joined = re.sub(r"\\\n\s*", " ", block.code).splitlines()
    out: list[tuple[list[str], list[str]]] = []
    for line in joined:
        if block.lang == "console" and not line.startswith("$ "):
            if out and line.strip():
                out[-1][1].append(line.strip())
            continue
        words = shlex.split(line.removeprefix("$ "), comments=True)
        if not words:
            continue
        if words[0] != "flowforge":
            raise AssertionError(f"{where}:{block.line}: {line.strip()!r} is not a flowforge command; run only "
                                 f'flowforge commands here, or mark the block title="not run in tests: REASON"')
        out.append((words[1:], []))
    return out


def run_flowforge(argv: list[str]) -> tuple[int, str]:
    """``flowforge ARGV`` in this process: its exit code and everything it printed."""
    from flowforge.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's --help / --version / usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code or 0, buffer.getvalue()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch):
    where = str(page.relative_to(ROOT))
    found = blocks(page.read_text(), where)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    namespace: dict = {"__name__": f"docs_example_{page.stem}"}
    started, cpu = time.perf_counter(), time.process_time()
    for block in found:
        if block.skip_reason is not None or block.lang in DATA:
            continue
        if block.lang == "python":
            exec(compile(block.code, f"{where}:{block.line}", "exec"), namespace)  # noqa: S102
            continue
        for argv, expected in commands(block, where):
            code, output = run_flowforge(argv)
            shown = "flowforge " + shlex.join(argv)
            if block.lang == "bash":
                assert code == 0, f"{where}:{block.line}: {shown} exited {code}:\n{output[-2000:]}"
            for line in expected:
                assert line in output, f"{where}:{block.line}: {shown} did not print {line!r}; it printed:\n{output}"
    print(f"{where}: {len(found)} blocks in {time.perf_counter() - started:.1f} s ({time.process_time() - cpu:.1f} s CPU)")


def test_the_convention_refuses_unmarked_and_unknown_blocks():
    with pytest.raises(AssertionError, match="needs a language"):
        blocks("```\nmake demo\n```\n", "page")
    with pytest.raises(AssertionError, match="needs a language"):
        blocks("~~~sh\nmake demo\n~~~\n", "page")
    with pytest.raises(AssertionError, match="needs a reason"):
        blocks('```bash title="not run in tests: "\nmake demo\n```\n', "page")
    with pytest.raises(AssertionError, match="not a flowforge command"):
        commands(blocks("```bash\nmake demo\n```\n", "page")[0], "page")
    marked = blocks('```bash title="not run in tests: trains for 5 min"\nmake demo\n```\n', "page")
    assert marked[0].skip_reason == "trains for 5 min"
    assert commands(blocks("```console\n$ flowforge --version\nflowforge 1\n```\n", "p")[0], "p") == \
        [(["--version"], ["flowforge 1"])]


def test_the_cli_page_lists_every_preset():
    text = (ROOT / "docs" / "cli.md").read_text()
    presets = text[text.index("Presets live in"):].split("\n\n")[0]  # the paragraph that lists them
    listed = set(re.findall(r"`([a-z0-9-]+)`", presets))
    missing = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml") if p.stem not in listed)
    assert not missing, f"docs/cli.md's preset list lacks {missing}"
