import json

import pytest

from behaviorlm_plugin.data.registry import RegistrationError, make_entry, read_dataset_info, register_datasets


def _write(d, rel):
    p = d / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{}\n")


def test_merge_keeps_other_entries_and_is_idempotent(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"theirs": {"file_name": "x.json"}}))
    _write(tmp_path, "a/train.jsonl")
    entry = {"a_train": make_entry("a/train.jsonl", "alpaca")}
    register_datasets(dataset_dir=tmp_path, entries=entry)
    register_datasets(dataset_dir=tmp_path, entries=entry)  # same again: fine
    info = read_dataset_info(tmp_path)
    assert info["theirs"] == {"file_name": "x.json"}
    assert info["a_train"]["columns"]["prompt"] == "instruction"
    assert not list(tmp_path.glob(".dataset_info.json.*"))  # no temp files left


def test_clash_refused_unless_overwrite(tmp_path):
    _write(tmp_path, "a/one.jsonl")
    _write(tmp_path, "a/two.jsonl")
    register_datasets(dataset_dir=tmp_path, entries={"a": make_entry("a/one.jsonl", "alpaca")})
    before = (tmp_path / "dataset_info.json").read_text()
    with pytest.raises(RegistrationError, match="--overwrite") as err:
        register_datasets(dataset_dir=tmp_path, entries={"a": make_entry("a/two.jsonl", "alpaca")})
    assert "dataset_info.json" in str(err.value) and "a/one.jsonl" in str(err.value)
    assert (tmp_path / "dataset_info.json").read_text() == before
    register_datasets(dataset_dir=tmp_path, entries={"a": make_entry("a/two.jsonl", "alpaca")}, overwrite=True)
    assert read_dataset_info(tmp_path)["a"]["file_name"] == "a/two.jsonl"


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        register_datasets(dataset_dir=tmp_path, entries={"a": make_entry("missing.jsonl", "alpaca")})
    with pytest.raises(ValueError, match="without spaces"):
        _write(tmp_path, "f.jsonl")
        register_datasets(dataset_dir=tmp_path, entries={"a b": make_entry("f.jsonl", "alpaca")})
    with pytest.raises(ValueError, match="formatting"):
        make_entry("f.jsonl", "csv")
    (tmp_path / "dataset_info.json").write_text("{not json")
    with pytest.raises(RegistrationError, match="line 1 is not valid JSON"):
        register_datasets(dataset_dir=tmp_path, entries={"a": make_entry("f.jsonl", "alpaca")})
