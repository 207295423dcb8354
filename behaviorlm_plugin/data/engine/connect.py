"""The embedded database the engine settings (``hparams.data_args.EngineArguments``) open."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

from behaviorlm_plugin.hparams.data_args import EngineArguments


class Database:
    """An in-memory DuckDB database whose spill files live in its own temporary folder.

    In-memory, not file-backed: its tables are held in the buffer pool like any intermediate result, so
    past ``memory_limit`` they too leave memory for the spill folder, but a table that fits is never
    compressed and written to a database file and read back (at 50M events, the ordered log's table took a
    third more CPU time file-backed: ``docs/data.md`` section 7)."""

    def __init__(self, settings: EngineArguments | None = None) -> None:
        import duckdb

        self.settings = settings or EngineArguments()
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
