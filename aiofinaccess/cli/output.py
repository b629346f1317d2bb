"""How the command line writes: rich on a terminal, plain text when piped, JSON when asked.

A terminal gets rich's tables, a spinner while ``login`` waits and red errors; a pipe gets
the same content as plain lines (columns padded with spaces), so scripts and ``grep`` keep
working. ``FORCE_COLOR`` forces the terminal form and ``NO_COLOR`` drops colour, as rich reads
them. JSON output never goes through rich. rich is imported only when a terminal is attached.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

__all__ = ["Output"]


def _styled(stream: TextIO) -> bool:
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Output:
    """The CLI's writer. ``echo`` is a plain line; the rest choose rich or plain."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.rich = _styled(self.out)
        self.rich_err = _styled(self.err)

    def _console(self, stderr: bool = False) -> Any:
        from rich.console import Console  # noqa: PLC0415  (only with a terminal)

        return Console(file=self.err if stderr else self.out, soft_wrap=True, highlight=False)

    def echo(self, text: str = "") -> None:
        """One plain line, flushed (a reader may wait for it: the login URL)."""
        self.out.write(text + "\n")
        self.out.flush()

    def json(self, data: object) -> None:
        """Machine-readable output: never styled."""
        self.echo(json.dumps(data, indent=2))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table: rich's on a terminal, space-padded columns when piped."""
        if self.rich:
            from rich.table import Table  # noqa: PLC0415

            table = Table(*header, header_style="bold")
            for row in rows:
                table.add_row(*row)
            self._console().print(table)
            return
        lines = [tuple(header), *(tuple(row) for row in rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self.echo("  ".join(cells).rstrip())

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        """``name: value`` lines (bold names on a terminal)."""
        width = max((len(name) for name, _ in pairs), default=0) + 2
        for name, value in pairs:
            if self.rich:
                self._console().print(f"[bold]{name + ':':<{width}}[/bold]{_escape(value)}")
            else:
                self.echo(f"{name + ':':<{width}}{value}")

    def success(self, text: str) -> None:
        """A result line (green on a terminal)."""
        if self.rich:
            self._console().print(f"[green]{_escape(text)}[/green]")
        else:
            self.echo(text)

    def error(self, where: str, message: str) -> None:
        """The one line of an expected failure, on stderr."""
        if self.rich_err:
            self._console(stderr=True).print(
                f"[bold red]error:[/bold red] {_escape(message)} [dim]({_escape(where)})[/dim]"
            )
        else:
            self.err.write(f"{where}: {message}\n")
            self.err.flush()

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner on stderr while something is awaited (nothing when piped)."""
        if not self.rich_err:
            yield
            return
        with self._console(stderr=True).status(_escape(text)):
            yield


def _escape(text: str) -> str:
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)
