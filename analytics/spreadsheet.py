"""CSV that opens safely in a spreadsheet: koekje's exports hold text visitors wrote (paths, campaign
names), and a spreadsheet runs a cell that looks like a formula."""

from __future__ import annotations

import csv
from typing import Any, Final, TextIO

# What a spreadsheet takes for the start of a formula (OWASP's list for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Every text cell quoted. Found by trying: where a comma is the decimal sign (Dutch, German, French) a
# spreadsheet splits an unquoted line on ";" as well, and "x;=cmd|..." became a cell that starts a formula.
QUOTING: Final = csv.QUOTE_NONNUMERIC


def cell(value: Any) -> Any:
    """A value as a cell: nothing for None, and a leading apostrophe for text a spreadsheet would take for
    a formula."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def writer(out: TextIO) -> Any:
    """A CSV writer of rows of cells (``cell``'s), every text quoted."""
    return csv.writer(out, lineterminator="\r\n", quoting=QUOTING)
