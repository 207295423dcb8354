"""Readers for the header-less delimited text dumps of the public datasets.

Shared by :mod:`~behaviorlm_plugin.data.loaders.foursquare` and
:mod:`~behaviorlm_plugin.data.loaders.app_usage`: every field is read as text, and every
problem raises :class:`~behaviorlm_plugin.data.events.BehaviorDataError` naming the file and
the 1-based line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.events import BehaviorDataError

__all__ = ["INT_RE", "WHITESPACE", "first_bad", "line_fields", "read_fields"]

INT_RE = r"[+-]?\d+"
WHITESPACE = r"\s+"  # the ``sep`` for whitespace-separated files

# (line, fields seen) -> the error to raise for a line with the wrong number of fields
WrongCount = Callable[[int, int], BehaviorDataError]


def line_fields(path: Path, line: int, sep: str, encoding: str) -> int:
    """Number of fields on 1-based ``line`` of ``path`` (error path only, reads up to that line)."""
    with path.open(encoding=encoding, newline="") as fh:
        text = next(islice(fh, line - 1, None), "").rstrip("\r\n")
    return len(text.split()) if sep == WHITESPACE else len(text.split(sep))


def first_bad(path: Path, lines: np.ndarray, bad: pd.Series | np.ndarray) -> tuple[int, int]:
    """(row index, 1-based file line) of the first True in ``bad``."""
    i = int(np.asarray(bad).nonzero()[0][0])
    return i, int(lines[i])


def _wrong_count_error(path: Path, sep: str, names: Sequence[str], fix: str) -> WrongCount:
    n = len(names)
    sep_word = "whitespace" if sep == WHITESPACE else "tab" if sep == "\t" else repr(sep)

    def wrong_count(line: int, saw: int) -> BehaviorDataError:
        return BehaviorDataError(
            f"{path}: line {line} has {saw} {sep_word}-separated field(s), expected {n} ({', '.join(names)}). {fix}"
        )

    return wrong_count


def _read_raw(path: Path, *, sep: str, n: int, encoding: str, wrong_count: WrongCount) -> pd.DataFrame:
    """All lines as string columns, blank lines kept (row i is file line i + 1)."""
    try:
        return pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            encoding=encoding,
            quoting=csv.QUOTE_NONE,  # quotes are ordinary characters in these dumps
            na_filter=False,  # keep "NA"/"null" as text; missing fields become ""
            skip_blank_lines=False,  # keeps row i == file line i + 1
        )
    except pd.errors.EmptyDataError as err:
        raise BehaviorDataError(f"{path}: the file is empty; expected {n} fields per line.") from err
    except pd.errors.ParserError as err:
        # The C parser takes the width of line 1 and complains about the first line that is wider.
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m is None:
            raise BehaviorDataError(f"{path}: could not be parsed: {err}") from err
        first, line, saw = map(int, m.groups())
        if first != n:
            raise wrong_count(1, first) from err
        raise wrong_count(line, saw) from err


def _check_width(
    path: Path, raw: pd.DataFrame, lines: np.ndarray, *, sep: str, n: int, encoding: str, wrong_count: WrongCount
) -> None:
    """Refuse a frame wider or narrower than ``n`` columns, naming the first offending line."""
    if raw.shape[1] > n:  # some line is too wide (the first line, or one the parser padded to)
        extra = (raw.iloc[:, n:] != "").any(axis=1).to_numpy()
        i = int(extra.nonzero()[0][0])
        raise wrong_count(int(lines[i]), line_fields(path, int(lines[i]), sep, encoding))
    if raw.shape[1] < n:  # every line is too narrow
        raise wrong_count(int(lines[0]), raw.shape[1])


def read_fields(
    path: Path, *, sep: str, names: Sequence[str], encoding: str, fix: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a header-less delimited text file into string columns ``names``.

    Returns the frame (blank lines dropped) and the 1-based file line of each row.
    Lines with the wrong number of fields raise :class:`BehaviorDataError`.
    """
    if not path.is_file():
        raise BehaviorDataError(f"{path}: file not found.")
    n = len(names)
    wrong_count = _wrong_count_error(path, sep, names, fix)
    raw = _read_raw(path, sep=sep, n=n, encoding=encoding, wrong_count=wrong_count)

    lines = np.arange(1, len(raw) + 1)
    if sep != WHITESPACE:  # whitespace-split fields cannot carry blanks
        raw = raw.apply(lambda col: col.str.strip())
    blank = (raw == "").all(axis=1).to_numpy()
    raw, lines = raw.loc[~blank].reset_index(drop=True), lines[~blank]
    if raw.empty:
        raise BehaviorDataError(f"{path}: the file has no data lines; expected {n} fields per line.")
    _check_width(path, raw, lines, sep=sep, n=n, encoding=encoding, wrong_count=wrong_count)
    raw.columns = list(names)

    # Short lines are padded with "": report them as a wrong field count, genuine empties as such.
    empty = (raw == "").to_numpy()
    if empty.any():
        i, j = (int(v[0]) for v in empty.nonzero())
        line = int(lines[i])
        saw = line_fields(path, line, sep, encoding)
        if saw != n:
            raise wrong_count(line, saw)
        raise BehaviorDataError(f"{path}: line {line}: column {j + 1} ({names[j]}) is empty. {fix}")
    return raw, lines
