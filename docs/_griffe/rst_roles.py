"""A griffe extension for the API reference: flowforge's docstrings use a few reStructuredText forms (zuko's
habit) that Markdown does not read. They are rewritten, for the docs only, before griffe parses them:

- ``:class:`~a.b.C``` and the other roles become cross-references to the object's entry (``C``; the full path
  without ``~``), optional ones, so a target without an entry stays inline code; ``:math:`x``` becomes ``$x$``;
- a ``.. math::`` block becomes display math (``$$ ... $$``, arithmatex, rendered by MathJax), and a literal block
  (a paragraph ending in ``::``, then an indented block) a fenced ``text`` block after a paragraph ending in ``:``;
- ``Example:`` becomes ``Examples:``, the Google-style section whose ``>>>`` lines render as code (griffe reads
  the singular as an admonition of Markdown text).

Loaded by mkdocs.yml (``extensions`` of the mkdocstrings python handler); the source is left unchanged.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(class|func|meth|mod|data|attr|obj|exc|math):`(~?)([^`]+)`")
MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<inline>.*)$")


def _role(match: re.Match) -> str:
    """A role as a cross-reference to the object's entry in the API reference (inline code where the target is
    not a full ``flowforge.`` path, or has no entry: autorefs' optional references fail no build)."""
    kind, tilde, target = match.groups()
    if kind == "math":
        return f"${target}$"
    shown = f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"
    if not target.startswith("flowforge."):
        return shown
    return f'<autoref identifier="{target}" optional>{shown}</autoref>'


def _math(indent: str, body: list[str]) -> list[str]:
    """A ``.. math::`` block as arithmatex's display math (MathJax renders it)."""
    return [f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""]


def _math_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        m = MATH_BLOCK.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, body = m["indent"], [m["inline"].strip()] if m["inline"].strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        out += _math(indent, body)
    return out


LITERAL = re.compile(r"^(?P<indent>[ \t]*)(?P<text>.*?)::[ \t]*$")


def _literal_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        m = LITERAL.match(lines[i])
        if not m or m["text"].lstrip().startswith(".."):
            out.append(lines[i])
            i += 1
            continue
        indent = len(m["indent"])
        body, j = [], i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if not body:
            out.append(lines[i])
            i += 1
            continue
        deepest = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        code = [f"{m['indent']}{b[deepest:]}" if b.strip() else "" for b in body]
        out += [f"{m['indent']}{m['text']}:", "", f"{m['indent']}```text", *code, f"{m['indent']}```", ""]
        i = j
    return out


def rewrite(text: str) -> str:
    """The docstring ``text`` in the Markdown the API reference renders."""
    lines = _literal_blocks(_math_blocks(text.splitlines()))
    lines = [re.sub(r"^(\s*)Example:\s*$", r"\1Examples:", line) for line in lines]
    return ROLE.sub(_role, "\n".join(lines))


class RstRoles(griffe.Extension):
    """Rewrites every docstring with :func:`rewrite` as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
