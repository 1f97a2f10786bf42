"""A griffe extension for the API reference: lsta_jax's docstrings are written as plain text, where a list or
an indented command starts right after the line that introduces it. Markdown needs a blank line there, or the
list and the command run on into the paragraph. This adds that blank line when the docstrings are loaded
(the source files are not touched); Google-style sections (`Args:`, `Returns:`, ...) are left as they are."""

from __future__ import annotations

import re
from typing import Any

import griffe

LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+\S")  # Python-Markdown: "1." lists, not "1)"
SECTION = re.compile(
    r"^\s*(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|Returns?|"
    r"Yields?|Receives?|Raises|Exceptions?|Warns?|Warnings?|Attributes|Examples?|Notes?|Methods|Functions|"
    r"Classes|Modules|Type Aliases|See Also|Todo|References):\s*$"
)


STAR_IN_NAME = re.compile(r"(?<=\w)_\*_(?=\w)")  # conv_*_s: a wildcard in a name, not emphasis
# "[--top-k 5] [--output F]" reads as a reference-style link to Markdown; "[text](url)" stays a link
BRACKET = re.compile(r"(?<!\\)\[(?![^\]]*\]\()")


def _escape_prose(line: str, in_span: bool) -> tuple[str, bool]:
    """In a prose line, outside code spans: `conv_*_s` -> `conv_\\*_s` (no emphasis) and `[x]` -> `\\[x]`
    (no link). `in_span`: a code span opened on an earlier line is still open; returned for the next line."""
    parts = line.split("`")
    start = 1 if in_span else 0
    escaped = "`".join(
        BRACKET.sub(r"\\[", STAR_IN_NAME.sub(r"_\\*_", p)) if (i + start) % 2 == 0 else p
        for i, p in enumerate(parts)
    )
    return escaped, (len(parts) - 1 + start) % 2 == 1


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def with_block_breaks(text: str) -> str:
    """Insert a blank line before the first item of a list and before an indented block (a command, code)
    that directly follows a line of prose, and escape prose that Markdown would misread; Google-style
    sections and code blocks are left as they are."""
    out: list[str] = []
    in_list = in_section = in_code = in_span = False
    item_indent = 0
    for line in text.splitlines():
        prev = out[-1] if out else ""
        blank_prev = not prev.strip()
        if not line.strip():
            in_list = in_span = False
            out.append(line)
            continue
        if _indent(line) == 0:
            in_section = bool(SECTION.match(line))
        if in_section:
            out.append(line)
            continue
        if in_code and _indent(line) >= 4:
            out.append(line)
            continue
        in_code = False
        item = bool(LIST_ITEM.match(line))
        if item:
            if not in_list and not blank_prev:
                out.append("")
            in_list, item_indent = True, _indent(line)
        elif in_list and _indent(line) <= item_indent:
            # back at the list's margin: a new paragraph in plain text, a continuation of the item in Markdown
            out.append("")
            in_list = False
        elif not in_list and _indent(line) >= 4:
            # an indented block: after a blank line it is code already; after "...:" it is meant as code
            if not blank_prev and prev.rstrip().endswith(":"):
                out.append("")
                in_code = True
            elif blank_prev:
                in_code = True
        if not in_code:
            line, in_span = _escape_prose(line, in_span)
        out.append(line)
    return "\n".join(out)


class PlainTextDocstrings(griffe.Extension):
    """Apply `with_block_breaks` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = with_block_breaks(obj.docstring.value)
