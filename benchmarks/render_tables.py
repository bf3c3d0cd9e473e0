"""Render the documentation's benchmark tables from ``benchmarks/results/*.json``, so no figure is copied by hand.

Each table sits in README.md or one of the pages docs/*.md, exactly once across them, between
``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` lines; this script rewrites what is between them from the
results files named in the registry ``benchmarks.tables.TABLES`` (one module per benchmark under
``benchmarks/tables/``) and leaves every other line alone.

    .venv/bin/python -m benchmarks.render_tables            # rewrite the tables in README.md and docs/*.md
    .venv/bin/python -m benchmarks.render_tables --check    # exit 1 (and show the diff) if a page differs
    .venv/bin/python -m benchmarks.render_tables --print nfe_curve_digits

A table whose results file does not exist yet and that has no markers is skipped with a note (it waits for its
benchmark to be run); a table with markers whose file is missing, a file present without the table's markers
in any page, or a table marked on two pages (or twice on one), fails ``--check``. Only the standard library is
used, so the check runs anywhere.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT
from benchmarks.tables import TABLES


# --------------------------------------------------------------------------- README and docs/*.md


def block(name: str) -> re.Pattern:
    """The lines between a table's two markers (markers kept)."""
    return re.compile(rf"(^<!-- table:{re.escape(name)} -->\n)(.*?\n)(<!-- /table:{re.escape(name)} -->$)",
                      re.MULTILINE | re.DOTALL)


def pages(root: Path) -> list[Path]:
    """The pages that may hold tables: ``root/README.md`` and ``root/docs/*.md``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render_pages(texts: dict[str, str], results: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """``(new texts, problems, notes)``: every marked table re-rendered from ``results``, in the one page (of
    ``texts``, page name -> text) that marks it."""
    problems, notes, texts = [], [], dict(texts)
    for page, text in texts.items():
        for name in re.findall(r"^<!-- table:([\w-]+) -->$", text, re.MULTILINE):
            if name not in TABLES:
                problems.append(f"{page} marks a table {name!r} that benchmarks/tables/__init__.py does not register")
    for name, spec in TABLES.items():
        missing = [s for s in spec.sources if not (results / f"{s}.json").exists()]
        marked = [page for page, text in texts.items() for _ in block(name).finditer(text)]
        if len(marked) > 1:
            problems.append(f"{name}: marked {len(marked)} times ({', '.join(marked)}); a table lives on one page")
            continue
        if missing:
            files = ", ".join(f"{s}.json" for s in missing)
            (problems if marked else notes).append(f"{name}: no {files} in {results}")
            continue
        if not marked:
            problems.append(f"{name}: its results exist but no page has <!-- table:{name} --> markers")
            continue
        files = {s: json.loads((results / f"{s}.json").read_text()) for s in spec.sources}
        rendered = spec.render(files)
        page = marked[0]
        texts[page] = block(name).sub(lambda m, r=rendered: m.group(1) + r + "\n" + m.group(3), texts[page], count=1)
    return texts, problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    parser.add_argument("--print", dest="show", metavar="NAME", choices=sorted(TABLES), help="print one table")
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory of README.md and docs/")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if args.show:
        spec = TABLES[args.show]
        print(spec.render({s: json.loads((args.results / f"{s}.json").read_text()) for s in spec.sources}))
        return 0
    files = {str(p.relative_to(args.root)): p for p in pages(args.root) if p.exists()}
    old = {page: path.read_text() for page, path in files.items()}
    new, problems, notes = render_pages(old, args.results)
    for note in notes:
        print(f"skipped {note}")
    for problem in problems:
        print(f"error: {problem}")
    stale = [page for page in files if new[page] != old[page]]
    if args.check:
        for page in stale:
            sys.stdout.writelines(difflib.unified_diff(old[page].splitlines(True), new[page].splitlines(True),
                                                       f"{page} (now)", "rendered from the results files"))
            print(f"{page}: tables differ from {args.results}; run `python -m benchmarks.render_tables`")
        return 1 if stale or problems else 0
    for page in stale:
        files[page].write_text(new[page])
        print(f"rewrote the tables of {page}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
