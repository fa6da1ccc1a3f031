"""The one way Patchwork writes a CSV file (the audit export, the subject access CSV, an
import's report, and any export to come), so that no cell can run as a formula when the file
is opened in Excel or LibreOffice.

A cell that begins with = + - @, a tab or a carriage return is read by a spreadsheet as a
formula (`=HYPERLINK(...)`, `@SUM(...)`, DDE), whoever typed it: an invited user's email, a
source system's id, a role's name. Following OWASP's rule for CSV injection, such a cell is
written with a single quote in front, which the spreadsheet shows as text and does not
display. Numbers are left alone: they cannot hold a formula.

It lives in `accounts`, the bottom layer, because it needs nothing else and every app may
write a CSV. (defusedcsv, the library for this, leaves tab and carriage return through.)"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Where a cell can begin in csv.writer's text (a line's start or after a comma, inside its
# quotes if it has them) followed by a formula's start. It also finds some that are not
# cells' starts (a quoted comma, a negative number): those rows take the slow way, no harm.
FORMULA_CELL = re.compile(r'(?:^|,)"?[=+\-@\t\r]', re.MULTILINE)


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def cell_neutralised(value: object) -> object:
    """`value` as a spreadsheet will read it as text: a quote before a formula's start."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class CsvWriter:
    """`csv.writer` whose every cell goes through `cell_neutralised`. `writerow` returns what
    the file's `write` returned (a streaming response uses that to yield each line)."""

    def __init__(self, file: _Writable) -> None:
        self._file = file
        self._writer = csv.writer(file)

    def writerow(self, row: Iterable[object]) -> Any:
        return self._writer.writerow([cell_neutralised(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        """Many rows at once (an import's report writes a million): written as they are
        when no cell of theirs can begin with a formula's start, which one search of the
        text shows; otherwise row by row through `writerow`."""
        rows = [list(row) for row in rows]
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        if FORMULA_CELL.search(text.getvalue()) is None:
            self._file.write(text.getvalue())
            return
        for row in rows:
            self.writerow(row)


def csv_writer(file: _Writable) -> CsvWriter:
    """A CSV writer for `file` that never writes a cell a spreadsheet would run."""
    return CsvWriter(file)
