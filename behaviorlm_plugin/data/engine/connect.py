"""Engine settings and the embedded database they open."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
DEFAULT_MEMORY_LIMIT = "2GB"
DEFAULT_CHUNK_ROWS = 1_000_000


def check_memory_limit(value: str) -> str:
    if not isinstance(value, str) or not MEMORY_RE.match(value.strip()):
        raise ValueError(f"--engine-memory-limit must look like 2GB, 512MB or 1.5GiB; got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class EngineSettings:
    """How much the engine may use. None of it changes the prepared data, only speed and memory."""

    memory_limit: str = DEFAULT_MEMORY_LIMIT  # DuckDB's buffer limit; past it, sorts and joins spill to temp_dir
    threads: int | None = None  # None: every core
    temp_dir: str | None = None  # where the database and its spill files live (None: the system temp folder)
    chunk_rows: int = DEFAULT_CHUNK_ROWS  # rows per batch that leaves the engine (text timestamps parsed in pandas)

    def __post_init__(self) -> None:
        check_memory_limit(self.memory_limit)
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"engine threads must be >= 1 or None, got {self.threads}")
        if self.chunk_rows < 1000:
            raise ValueError(f"engine chunk_rows must be >= 1000, got {self.chunk_rows}")


class Database:
    """An in-memory DuckDB database whose spill files live in its own temporary folder.

    In-memory, not file-backed: its tables are held in the buffer pool like any intermediate result, so
    past ``memory_limit`` they too leave memory for the spill folder, but a table that fits is never
    compressed and written to a database file and read back (at 50M events, the ordered log's table took a
    third more CPU time file-backed: ``docs/data.md`` section 7)."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        import duckdb

        self.settings = settings or EngineSettings()
        self.folder = Path(tempfile.mkdtemp(prefix="behaviorlm-engine-", dir=self.settings.temp_dir))
        # The spill folder goes with the object even if no one calls close() (a table dropped on an error
        # path, a test): at garbage collection, or at the latest when the interpreter exits.
        self._remove_folder = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET memory_limit = '{self.settings.memory_limit}'")
        self.con.execute(f"SET temp_directory = '{self.folder / 'spill'}'")
        self.con.execute(f"SET threads = {self.settings.threads or os.cpu_count() or 1}")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self._remove_folder()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
