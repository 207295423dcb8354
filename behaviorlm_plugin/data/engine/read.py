"""The engine's readers: a log file (or a folder of Parquet parts) becomes the table ``raw``.

``raw`` has the four event columns (renamed by the column map) and ``row``, the event's 0-based data row
in the source, which every error message names (with the file line for text tables, as
:func:`behaviorlm_plugin.data.events.where` counts it).  For a folder of parts, ``row`` runs on across the
parts in name order and :class:`Source` turns it back into (part, row).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from behaviorlm_plugin.data.events import (
    EVENT_COLUMNS,
    SUPPORTED_SUFFIXES,
    BehaviorDataError,
    _jsonl_error,
    suffix_format,
    where,
)

ENGINE_FORMATS = ("csv", "tsv", "jsonl", "parquet")


@dataclass
class Source:
    """Where the events came from, to name positions in messages."""

    name: str
    parts: list[Path] = field(default_factory=list)  # a folder's Parquet parts, in row order
    offsets: np.ndarray | None = None  # first global row of each part

    def locate(self, row: int) -> tuple[str, str]:
        """(file, ``row N (line M)``) of a global row."""
        if self.offsets is None or len(self.parts) == 0:
            return self.name, where(self.name, row)
        i = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return str(self.parts[i]), where(str(self.parts[i]), row - int(self.offsets[i]))

    def where(self, row: int) -> str:
        """``path: row N`` (with the CSV line) of a global row."""
        return ": ".join(self.locate(row))


def _sql_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _is_empty_file(path: Path) -> bool:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return not fh.read(1).strip()
    return path.stat().st_size == 0


def parquet_parts(path: Path) -> list[Path]:
    parts = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not parts:
        raise BehaviorDataError(f"{path}: a folder, but it holds no .parquet parts; give a file or a folder of parts")
    return parts


def _scan_sql(path: Path, fmt: str) -> str:
    """The reader call for one file; every column as written (CSV: as text, so labels stay as written)."""
    p = _sql_str(path)
    if fmt in ("csv", "tsv"):
        delim = "\\t" if fmt == "tsv" else ","
        return (
            f"read_csv({p}, header = true, all_varchar = true, delim = '{delim}', quote = '\"', escape = '\"', "
            "null_padding = true)"
        )
    if fmt == "jsonl":
        # Text stays text (timestamps too): their offsets are read by the same rules as every other format.
        return (
            f"read_json({p}, format = 'newline_delimited', records = true, sample_size = -1, "
            "timestampformat = 'disabled', dateformat = 'disabled')"
        )
    return f"read_parquet({p})"


def _materialize(con, path: Path, fmt: str) -> None:
    """``raw_in``: the file as read, its rows in file order (``rowid``)."""
    con.execute("SET preserve_insertion_order = true")
    try:
        con.execute(f"CREATE OR REPLACE TABLE raw_in AS SELECT * FROM {_scan_sql(path, fmt)}")
    except Exception as err:  # the engine raises several kinds for malformed input; the user gets one line
        if fmt == "jsonl":
            raise _jsonl_error(path, err) from err
        raise BehaviorDataError(f"{path}: could not be read as {fmt}: {str(err).splitlines()[0]}") from err


def _parquet_view(con, path: Path) -> None:
    try:
        con.execute(
            f"CREATE OR REPLACE VIEW raw_in AS SELECT * EXCLUDE (file_row_number), file_row_number::BIGINT AS __row "
            f"FROM read_parquet({_sql_str(path)}, file_row_number = true)"
        )
        con.execute("SELECT * FROM raw_in LIMIT 0").fetchall()
    except Exception as err:
        raise BehaviorDataError(f"{path}: could not be read as parquet: {str(err).splitlines()[0]}") from err


def _read_parts(con, path: Path, parts: list[Path]) -> np.ndarray:
    """A folder of Parquet parts in name order, one global row number across them; returns the offsets."""
    listing = "[" + ", ".join(_sql_str(p) for p in parts) + "]"
    try:
        counts = con.execute(
            f"SELECT file_name, sum(row_group_num_rows) FROM parquet_metadata({listing}) GROUP BY file_name"
        ).fetchall()
        by_name = {str(Path(f)): int(n) for f, n in counts}
        sizes = np.array([by_name.get(str(p), 0) for p in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        table = pd.DataFrame({"filename": [str(p) for p in parts], "offset": offsets})
        con.register("part_offsets", table)
        con.execute(
            f"CREATE OR REPLACE TABLE raw_in AS SELECT r.* EXCLUDE (filename, file_row_number), "
            f"(o.offset + r.file_row_number)::BIGINT AS __row FROM read_parquet({listing}, filename = true, "
            "file_row_number = true, union_by_name = true) r JOIN part_offsets o ON r.filename = o.filename"
        )
        con.unregister("part_offsets")
    except Exception as err:
        raise BehaviorDataError(f"{path}: could not be read as a folder of parquet parts: {err}") from err
    return offsets


def read_raw(con, path: str | Path, fmt: str | None = None, column_map: dict[str, str] | None = None) -> Source:
    """Read ``path`` into the table ``raw(user_id, timestamp, place, behavior, row)``; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise BehaviorDataError(f"{path}: file not found.")
    source = Source(name=str(path))
    if path.is_dir():
        source.parts = parquet_parts(path)
        source.offsets = _read_parts(con, path, source.parts)
        row_sql = "__row"
    else:
        fmt = fmt or suffix_format(path)
        if fmt is None:
            raise BehaviorDataError(
                f"{path}: cannot tell the format from suffix {path.suffix!r}; "
                f"use one of {sorted(SUPPORTED_SUFFIXES)} or pass --format."
            )
        if fmt not in ENGINE_FORMATS:
            raise BehaviorDataError(f"{path}: the engine reads {', '.join(ENGINE_FORMATS)}, not {fmt!r}")
        if fmt != "parquet" and _is_empty_file(path):
            raise BehaviorDataError(f"{path}: the file is empty; it needs a header and one event per row")
        if fmt == "parquet":  # read in place: Parquet numbers its rows itself
            _parquet_view(con, path)
            row_sql = "__row"
        else:  # text: copied once, in file order, so ``rowid`` is the data row
            _materialize(con, path, fmt)
            row_sql = "(rowid)::BIGINT"
    columns = [c for c in (d[0] for d in con.execute("SELECT * FROM raw_in LIMIT 0").description) if c != "__row"]
    if con.execute("SELECT count(*) FROM raw_in").fetchall()[0][0] == 0:
        raise BehaviorDataError(f"{path}: has no events (a header or an empty list, but no rows); add data")
    _select_events(con, source, columns, column_map or {}, row_sql)
    return source


def _select_events(con, source: Source, columns: list[str], column_map: dict[str, str], row_sql: str) -> None:
    unknown = set(column_map) - set(EVENT_COLUMNS)
    if unknown:
        raise BehaviorDataError(
            f"{source.name}: column map has unknown target(s) {sorted(unknown)}; keys must be among "
            f"{list(EVENT_COLUMNS)}."
        )
    renamed = {src: dst for dst, src in column_map.items()}
    found = [renamed.get(c, c) for c in columns]
    missing = [c for c in EVENT_COLUMNS if c not in found]
    if missing:
        raise BehaviorDataError(
            f"{source.name}: missing column(s) {missing}; found {found}. "
            "Rename them in the file or pass a column map, e.g. --column-map behavior=intent."
        )
    pick = {dst: src for src, dst in zip(columns, found, strict=True)}
    cols = ", ".join(f"{_ident(pick[c])} AS {c}" for c in EVENT_COLUMNS)
    con.execute(f"CREATE OR REPLACE VIEW raw AS SELECT {cols}, {row_sql} AS row FROM raw_in")
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE raw)").fetchall())
    mixed = [c for c in EVENT_COLUMNS if types[c] == "JSON"]  # JSONL keys whose values differ in kind
    for col in mixed:
        found_row = con.execute(
            f"SELECT min(row), arg_min(json_type({col}), row) FROM raw WHERE json_type({col}) IN ('ARRAY', 'OBJECT')"
        ).fetchall()[0]
        if found_row[0] is not None:
            kind = "list" if found_row[1] == "ARRAY" else "dict"
            raise BehaviorDataError(
                f"{source.where(int(found_row[0]))} column {col!r} holds a {kind}, not a single value; "
                "give one label per event"
            )
    if mixed:
        plain = ", ".join(
            f"json_extract_string({_ident(pick[c])}, '$') AS {c}" if c in mixed else f"{_ident(pick[c])} AS {c}"
            for c in EVENT_COLUMNS
        )
        con.execute(f"CREATE OR REPLACE VIEW raw AS SELECT {plain}, {row_sql} AS row FROM raw_in")


def frame_codes(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]]]:
    """A frame a loader validated and sorted (or the simulator's) as coded columns, and the vocabularies.

    The codes are what the pandas path's ``encode_events`` gave: a categorical column keeps its categories
    (all of them, in their order), any other column is coded by its sorted distinct values.
    """
    out, vocab = {}, {}
    for col, key in (("user_id", "u"), ("place", "p"), ("behavior", "b")):
        cat = pd.Categorical(df[col])
        out[key] = cat.codes.astype(np.int32)
        vocab[col] = tuple(str(c) for c in cat.categories)
    ts = pd.DatetimeIndex(df["timestamp"]).to_numpy().astype("datetime64[ns]").view(np.int64)
    frame = pd.DataFrame({**out, "ts": ts, "row": np.arange(len(df), dtype=np.int64)})
    return frame, vocab
