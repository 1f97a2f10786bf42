"""A griffe extension for the API reference: lsta_jax's docstrings are written as plain text, where a list or
an indented command starts right after the line that introduces it. Markdown needs a blank line there, or the
list and the command run on into the paragraph. This adds that blank line when the docstrings are loaded
(the source files are not touched); Google-style sections (`Args:`, `Returns:`, ...) are left as they are."""

from __future__ import annotations

import re
from typing import Any

import griffe

LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")
SECTION = re.compile(
    r"^\s*(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|Returns?|"
    r"Yields?|Receives?|Raises|Exceptions?|Warns?|Warnings?|Attributes|Examples?|Notes?|Methods|Functions|"
    r"Classes|Modules|Type Aliases|See Also|Todo|References):\s*$"
)


STAR_IN_NAME = re.compile(r"(?<=\w)_\*_(?=\w)")  # conv_*_s: a wildcard in a name, not emphasis


def _escape_wildcards(line: str) -> str:
    """`conv_*_s` outside code spans -> `conv_\\*_s` (Markdown would read the stars as emphasis)."""
    parts = line.split("`")
    return "`".join(STAR_IN_NAME.sub(r"_\\*_", p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def with_block_breaks(text: str) -> str:
    """Insert a blank line before the first item of a list and before an indented block (a command, code)
    that directly follows a line of prose, except inside Google-style sections."""
    out: list[str] = []
    in_list = in_section = in_block = False
    item_indent = 0
    for line in text.splitlines():
        line = _escape_wildcards(line)
        prev = out[-1] if out else ""
        blank_prev = not prev.strip()
        if not line.strip():
            in_list = in_block = False
            out.append(line)
            continue
        if _indent(line) == 0:
            in_section = bool(SECTION.match(line))
            in_block = False
        if in_section:
            out.append(line)
            continue
        if LIST_ITEM.match(line) and not in_list and not in_block and not blank_prev:
            out.append("")
        if LIST_ITEM.match(line):
            in_list, item_indent = True, _indent(line)
        elif in_list and _indent(line) <= item_indent:
            # a line back at the list's margin ends the list (plain text), Markdown would continue the item
            out.append("")
            in_list = False
        if (
            not LIST_ITEM.match(line)
            and not in_list
            and not in_block
            and not blank_prev
            and _indent(line) >= _indent(prev) + 4
            and prev.rstrip().endswith(":")
        ):
            out.append("")
            in_block = True
        out.append(line)
    return "\n".join(out)


class PlainTextDocstrings(griffe.Extension):
    """Apply `with_block_breaks` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = with_block_breaks(obj.docstring.value)
