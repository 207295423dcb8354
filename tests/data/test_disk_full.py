"""A full disk (ENOSPC, made by a fake writer) during a file write, a bench step, a part write and prepare: a clear
message naming the path and the space, and nothing half-written left where a later run would take it as complete."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from small_configs import small_synthetic_prepare

from behaviorlm_plugin.data.prepare import prepare
from behaviorlm_plugin.data.registry import read_dataset_info
from behaviorlm_plugin.extras import fileio
from behaviorlm_plugin.extras.fileio import DiskFullError, atomic_write_json
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.runs.bench.cache import StepCache


def full_disk_after(monkeypatch, writes_ok: int = 0) -> None:
    """Every write past the first ``writes_ok`` fails as a full disk would (after writing half its bytes)."""
    real = fileio.write_all
    count = {"n": 0}

    def write_all(fh, data: bytes) -> None:
        count["n"] += 1
        if count["n"] <= writes_ok:
            return real(fh, data)
        fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "write_all", write_all)


def test_an_atomic_write_keeps_the_old_file_and_names_the_space(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"old": True})
    full_disk_after(monkeypatch)
    with pytest.raises(DiskFullError, match=r"results\.json: no space left on the device .*needs 0\.0 MB") as err:
        atomic_write_json(path, {"new": "x" * 100})
    assert err.value.errno == errno.ENOSPC and "free" in str(err.value)
    assert json.loads(path.read_text()) == {"old": True}  # the reader still sees the whole old file
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


def test_a_step_that_fills_the_disk_leaves_no_entry_taken_as_complete(tmp_path, monkeypatch):
    cache = StepCache(tmp_path, lambda s: None)
    full_disk_after(monkeypatch)

    def build(out: Path) -> dict:
        (out / "big.bin").write_bytes(b"0" * 1000)
        atomic_write_json(out / "data.json", {"rows": [1, 2, 3]})
        return {"n": 3}

    with pytest.raises(DiskFullError, match="running the subset step") as err:
        cache.run("subset", {"n": 3}, build)
    assert str(tmp_path / "subset") in str(err.value) and "it had written 0.0 MB" in str(err.value)
    assert not list((tmp_path / "subset").glob("*/step.json"))
    assert not [p for p in (tmp_path / "subset").iterdir() if p.is_dir()]  # nor a partial folder
    monkeypatch.undo()
    step = cache.run("subset", {"n": 3}, build)  # space again: the step runs from scratch
    assert not step.cached and (step.dir / "data.json").exists()


def test_prepare_on_a_full_disk_commits_nothing_and_says_where(tmp_path, monkeypatch):
    args = PrepareArguments(**small_synthetic_prepare(tmp_path / "data"))
    full_disk_after(monkeypatch, writes_ok=3)
    with pytest.raises(DiskFullError, match="no space left on the device while writing the dataset") as err:
        prepare(args, log=lambda s: None)
    assert str(tmp_path / "data") in str(err.value) and "MB free" in str(err.value)
    assert not (tmp_path / "data" / "beh" / "stats.json").exists()
    assert "beh_train_all" not in read_dataset_info(tmp_path / "data")
    leftovers = [p.name for p in (tmp_path / "data").iterdir() if p.is_dir()]
    assert leftovers == [], leftovers  # no staging folder either
    monkeypatch.undo()
    stats = prepare(args, log=lambda s: None)  # space again: a clean prepare
    assert stats["name"] == "beh" and (tmp_path / "data" / "beh" / "stats.json").exists()
