"""An MkDocs hook: the ``title="not run in tests: ..."`` of a code block is a note for the test that runs the docs'
examples (tests/test_docs_examples.py), not for readers, so the site drops it before the page renders."""

from __future__ import annotations

import re

NOTE = re.compile(r'[ \t]*title="not run in tests:[^"]*"')


def on_page_markdown(markdown: str, **kwargs) -> str:
    return NOTE.sub("", markdown)
