"""What every `python -m lsta_jax.X` command line shares: argument types, old spellings, one-line errors.

Conventions of the commands:
- flags are kebab-case (`--data-dir`); an older underscore spelling (`--data_dir`) stays accepted as a hidden
  alias (`add_hidden_alias`), so old command lines keep working without showing two names in `--help`;
- an on/off choice is a switch (`--flow`), not a value (`--flow 1`);
- a bad argument stops the command with ONE line on stderr that names the flag, the value and what is
  expected (`ArgumentParser.error`, the argument types below), exit status 2; `--help` shows each default
  once, from the parser itself (`ArgumentParser` uses `ArgumentDefaultsHelpFormatter`'s rule, so help texts
  do not repeat it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

#: What `--which` accepts: a training workdir's checkpoint.
CHECKPOINT_CHOICES = ("latest", "best")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """A module docstring as written (its command examples keep their lines; a one-paragraph description is
    wrapped) and each default shown once and
    true: `(default: X)` is added from the parser's own default, only where there is one (not None, not a
    switch's False) and the help text does not already say what the default is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():  # a docstring: its lines as written
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)  # one paragraph: wrapped

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
            or isinstance(action, argparse._HelpAction)
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog: error: MESSAGE (see --help)` on stderr, exit status 2, and no
    usage block before it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _integer_at_least(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a size, a count of frames or clips)."""
    return _integer_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed, a number of worker threads)."""
    return _integer_at_least(text, 0, "an integer >= 0")


def checkpoint_choice(text: str) -> str:
    """argparse type of `--which`: 'latest', 'best' or a step number (kept as text, as `load_model` takes)."""
    if text in CHECKPOINT_CHOICES or (text.isdigit() and int(text) >= 0):
        return text
    raise argparse.ArgumentTypeError(f"must be latest, best or a step number, got {text!r}")


_ON, _OFF = ("1", "true", "yes"), ("0", "false", "no")


def old_switch_values(argv: Sequence[str], switches: Sequence[str]) -> list[str]:
    """Rewrite the older value spelling of switches: `--flow 1` / `--flow=1` -> `--flow`, `--flow 0` ->
    nothing, so a switch (`action='store_true'`) keeps accepting command lines written before it was one."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        flag, eq, value = item.partition("=")
        if flag in switches and eq:
            if value.lower() in _ON:
                out.append(flag)
            elif value.lower() not in _OFF:
                out.append(item)  # argparse refuses it, naming the switch
        elif item in switches and i + 1 < len(items) and items[i + 1].lower() in _ON + _OFF:
            if items[i + 1].lower() in _ON:
                out.append(item)
            i += 1
        else:
            out.append(item)
        i += 1
    return out


def add_hidden_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept `old` (e.g. `--data_dir`) as a spelling of the existing option `new` (`--data-dir`), without
    listing it in `--help`."""
    action = parser._option_string_actions[new]
    kwargs: dict[str, Any] = dict(dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        kwargs["action"] = "store_true" if isinstance(action, argparse._StoreTrueAction) else "store_false"
    else:
        kwargs.update(type=action.type, nargs=action.nargs, const=action.const, choices=action.choices)
    parser.add_argument(old, **kwargs)


def retype(parser: argparse.ArgumentParser, **types: Callable[[str], Any]) -> None:
    """Give existing options a stricter type, by dest: `retype(parser, size=positive_int)` (for options that
    a shared helper added)."""
    for action in parser._actions:
        if action.dest in types:
            action.type = types[action.dest]


def config_overrides(parser: argparse.ArgumentParser, rest: Sequence[str]) -> list[str]:
    """The `--config.field=value` items left over by `parse_known_args`; anything else is a usage error."""
    unknown = [r for r in rest if not r.startswith("--config.")]
    if unknown:
        parser.error(
            f"unrecognised arguments {' '.join(unknown)} (config fields are set as --config.field=value)"
        )
    bare = [r for r in rest if "=" not in r]
    if bare:
        parser.error(f"{bare[0]} has no value: write {bare[0]}=VALUE (one argument, with '=')")
    return list(rest)


def fail(message: str, status: int = 2) -> int:
    """Print `error: MESSAGE` (one line) on stderr and return the exit status for `main` to return."""
    one_line = re.sub(r"\s*\n\s*", " ", str(message)).strip()
    print(f"error: {one_line}", file=sys.stderr)
    return status


__all__ = [
    "ArgumentParser",
    "HelpFormatter",
    "add_hidden_alias",
    "old_switch_values",
    "checkpoint_choice",
    "config_overrides",
    "fail",
    "non_negative_int",
    "positive_int",
    "retype",
]
