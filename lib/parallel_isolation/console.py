"""The toolkit's output rules, owned here and used by every command and the pytest summary.

* **Literal.** User data (``file:line:col``, topics, test ids, messages, log
  lines) is printed as it is: never read as rich markup (``[red]``) or emoji
  codes (``:100:``).  Styles apply to whole segments the toolkit chose.
* **Plain when not a terminal.** Without a terminal (a pipe, a file, CI logs)
  output has no colours, no box drawing and no wrapping; a line is as long as
  its content, so ``file:line`` is never cut.  ``NO_COLOR`` turns colours off
  on a terminal too.
* **Streams.** Results go to stdout; progress and diagnostics to stderr.
* **Order.** Worker ids and the like sort naturally: ``gw2`` before ``gw10``.
* **Exit codes.** 0 clean, 1 findings, 2 could not (:data:`EXIT_CLEAN`,
  :data:`EXIT_FINDINGS`, :data:`EXIT_COULD_NOT`).
* **One wording per error.** :func:`error_text` puts a problem and its fix
  in one shape; the concern that detects a problem owns its message.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, TypeVar

__all__ = [
    "EXIT_CLEAN",
    "EXIT_COULD_NOT",
    "EXIT_FINDINGS",
    "Out",
    "Segment",
    "columns",
    "error_text",
    "natural_key",
    "natural_sorted",
    "stderr",
    "stdout",
]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_COULD_NOT = 2

T = TypeVar("T")
Segment = tuple[str, str | None]
"""A piece of a line: its text (literal) and a style name (or None)."""

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders runs of digits by value: ``gw2`` < ``gw10`` < ``master``."""
    parts: list[tuple[int, int | str]] = []
    for index, part in enumerate(_DIGITS.split(text)):
        if index % 2:
            parts.append((0, int(part)))
        elif part:
            parts.append((1, part))
    return tuple(parts)


def natural_sorted(items: Iterable[T], key: Callable[[T], str] | None = None) -> list[T]:
    """``items`` in natural order of ``key(item)`` (the item itself when it is a string)."""
    pick: Callable[[T], str] = key if key is not None else str
    return sorted(items, key=lambda item: natural_key(pick(item)))


def error_text(message: str, fix: str | None = None) -> str:
    """The one shape of an error: what is wrong (naming the value and its source), then the fix."""
    return message if not fix else f"{message}\n  fix: {fix}"


def columns(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()
) -> list[str]:
    """Rows as aligned plain-text lines (two spaces between columns, nothing wrapped).

    ``right`` lists the indexes of right-aligned (numeric) columns.  The last
    column is never padded, so a long value only makes its own line longer.
    """
    table = [[str(cell) for cell in headers], *[[str(cell) for cell in row] for row in rows]]
    if not table[0]:
        return []
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    align_right = set(right)
    lines = []
    for row in table:
        cells = []
        for index, cell in enumerate(row):
            last = index == len(row) - 1
            if index in align_right:
                cells.append(cell.rjust(widths[index]))
            else:
                cells.append(cell if last else cell.ljust(widths[index]))
        lines.append("  ".join(cells).rstrip())
    return lines


class Out:
    """One output stream under the rules above.

    ``Out(sys.stdout)`` for results, ``Out(sys.stderr)`` for diagnostics.
    On a terminal, segments are styled through rich with markup, emoji and
    highlighting off and soft wrapping (the terminal wraps, rich does not);
    otherwise text is written as it is.
    """

    def __init__(
        self, file: IO[str] | None = None, *, color: bool | None = None, width: int | None = None
    ) -> None:
        self.file = file if file is not None else sys.stdout
        isatty = getattr(self.file, "isatty", None)
        self.is_terminal = bool(isatty()) if callable(isatty) else False
        wanted = self.is_terminal and "NO_COLOR" not in os.environ
        self.styled = wanted if color is None else color
        self._width = width
        self._console: Any = None

    def _rich(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.file,
                markup=False,
                emoji=False,
                highlight=False,
                force_terminal=self.styled,
                no_color=not self.styled,
                width=self._width,
                soft_wrap=True,
            )
        return self._console

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of literal text, styled on a terminal."""
        self.segments([(text, style)])

    def segments(self, parts: Iterable[Segment]) -> None:
        """One line made of literal pieces, each with its own style."""
        pieces = list(parts)
        if not self.styled:
            self.file.write("".join(text for text, _ in pieces) + "\n")
            self.file.flush()
            return
        from rich.text import Text

        line = Text()
        for text, style in pieces:
            line.append(text, style=style or "")
        self._rich().print(line)

    def lines(self, texts: Iterable[str], style: str | None = None) -> None:
        for text in texts:
            self.line(text, style)

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        right: Iterable[int] = (),
        header_style: str = "bold",
    ) -> None:
        """Aligned columns (plain everywhere; the header is bold on a terminal)."""
        rendered = columns(headers, rows, right=right)
        if not rendered:
            return
        self.line(rendered[0], header_style)
        self.lines(rendered[1:])


def stdout() -> Out:
    """Results."""
    return Out(sys.stdout)


def stderr() -> Out:
    """Progress and diagnostics."""
    return Out(sys.stderr)
