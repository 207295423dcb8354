"""The out-of-core event path on DuckDB: read -> validate -> de-duplicate -> order -> window -> sample.

Every step over the whole log runs inside an embedded DuckDB database kept in a temporary folder, under
a memory limit (``engine.memory_limit``), spilling to disk past it; only the sampled windows come back
to Python (numpy/pandas) for prompts and features.  Why DuckDB and not Polars: ``docs/data.md``.

* :mod:`.connect` – the database the settings (``hparams.data_args.EngineArguments``) open;
* :mod:`.read` – the engine's readers (CSV/TSV, also gzip; JSONL, also gzip; Parquet; a folder of Parquet
  parts) and pandas frames, as one ``raw`` table with each event's source row;
* :mod:`.validate` – the checks of :func:`behaviorlm_plugin.data.events.validate_events`, same messages;
* :mod:`.order` – duplicates, too-short users, per-user positions: the :class:`EventTable`;
* :mod:`.sample` – targets per split (user or time split), seeded draws, and the fetch of chosen windows.
"""

from behaviorlm_plugin.data.engine.order import EventTable, load_event_table, table_from_frame
from behaviorlm_plugin.hparams.data_args import EngineArguments

__all__ = ["EngineArguments", "EventTable", "load_event_table", "table_from_frame"]
