"""Part files a merge can trust: provenance and checksum written, every damaged, foreign or incomplete file
refused or left out by rule, and a refused merge writes nothing. Parts here are built from fake rows through the
real results assembly (no model runs), so every case is cheap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from behaviorlm_plugin.cli import main as cli_main
from behaviorlm_plugin.eval.metrics import SUMMARY_KEYS
from behaviorlm_plugin.runs.bench.part_files import PartFileError, checksum, provenance, write_part
from behaviorlm_plugin.runs.bench.parts import done_parts, merge_parts, part_path
from behaviorlm_plugin.runs.bench.results import assemble_results
from behaviorlm_plugin.runs.bench.runner import load_suite

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"
BEHAVIORS = ["a", "b", "c"]


def write_suite(tmp: Path, **change) -> Path:
    cfg = {
        "name": "parts",
        "model_name_or_path": "some/model",
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning")},
        "prepare": {"synthetic": True, "dataset_dir": str(tmp / "data"), "name": "beh"},
        "seeds": [0],
        "out_dir": str(tmp / "out"),
        "cache_dir": str(tmp / "cache"),
        "sasrec": {"enabled": False},
        "variants": [
            {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
            {"name": "zero-shot", "kind": "zero_shot", "group": "baseline"},
        ],
        "parts": [{"name": "one", "variants": ["BehaviorLM"]}, {"name": "two", "variants": ["zero-shot"]}],
        **change,
    }
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def fake_part(suite, name: str, rows: list[str], *, complete: bool = True, data_fp: str = "data-fp") -> Path:
    rng = np.random.default_rng(len(name))
    labels = rng.integers(0, 3, 12).tolist()
    ids = [f"s{i}" for i in range(12)]
    metrics = {s: {k: 0.5 for k in SUMMARY_KEYS} for s in ("test", "test_balanced")}
    preds = {s: rng.integers(0, 3, 12).tolist() for s in ("test", "test_balanced")}
    results = {r: {0: {"metrics": metrics, "train_samples": 10, "alpha": 0.0, "predictions": preds}} for r in rows}
    evidence = {
        "behaviors": BEHAVIORS,
        "categories": ["head", "medium", "tail"],
        "eval_samples": {s: {"ids": ids, "labels": labels} for s in ("test", "test_balanced")},
    }
    content = {**assemble_results(suite, results, None, [], 1.0, evidence), "bootstrap": {}, "complete": complete}
    path = part_path(suite, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    eval_ids = {s: ids for s in ("test", "test_balanced")}
    write_part(path, {**content, "part": name}, provenance(suite, data_fp, eval_ids))
    return path


@pytest.fixture
def two_parts(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    return suite, fake_part(suite, "one", ["BehaviorLM"]), fake_part(suite, "two", ["zero-shot"])


def test_a_part_records_its_provenance_and_checksum(two_parts):
    suite, one, _ = two_parts
    content = json.loads(one.read_text())
    prov = content["provenance"]
    assert set(prov) >= {"config_fingerprint", "data_fingerprint", "eval_ids", "git", "versions"}
    assert set(prov["git"]) == {"commit", "dirty"} and set(prov["versions"]) == {
        "torch",
        "transformers",
        "peft",
        "llamafactory",
    }
    assert content["checksum"] == checksum(content)
    merged = merge_parts(suite, lambda s: None)
    assert merged["complete"] is True and set(merged["variants"]) == {"BehaviorLM", "zero-shot"}
    assert (Path(suite.out_dir) / "results.json").exists() and set(merged["provenance"]) == {"one", "two"}


def _damage(path: Path, how: str) -> None:
    text = path.read_text()
    if how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "empty object":
        path.write_text("{}")
    elif how == "checksum":
        path.write_text(text.replace('"train_samples": 10', '"train_samples": 11', 1))
    elif how == "shape":  # a consistent checksum over a wrong shape: what a buggy writer would leave
        content = json.loads(text)
        content["variants"]["BehaviorLM"]["per_seed"]["0"]["metrics"] = "high"
        content["checksum"] = checksum(content)
        path.write_text(json.dumps(content))
    elif how == "types":
        content = json.loads(text)
        content["variants"] = ["BehaviorLM"]
        content["checksum"] = checksum(content)
        path.write_text(json.dumps(content))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "not valid JSON"),
        ("empty object", "no provenance or checksum"),
        ("checksum", "checksum mismatch"),
        ("shape", r"per_seed\['0'\] has no metrics mapping"),
        ("types", "'variants' should be a dict, got list"),
    ],
)
def test_a_damaged_part_is_refused_and_nothing_is_written(two_parts, capsys, how, message):
    suite, one, _ = two_parts
    _damage(one, how)
    with pytest.raises(PartFileError, match=message) as err:
        merge_parts(suite, lambda s: None)
    assert str(one) in str(err.value) and "--part one" in str(err.value)
    out = Path(suite.out_dir)
    assert not (out / "results.json").exists() and not list(out.glob("*.png")) and not (out / "report.md").exists()
    # From the command line: one line naming the file, exit 1, no traceback.
    assert cli_main(["bench", str(Path(suite.base_dir) / "suite.yaml"), "--merge"]) == 1
    err_text = capsys.readouterr().err
    assert str(one) in err_text and "Traceback" not in err_text
    assert not (out / "results.json").exists()
    assert "one" not in done_parts(suite)  # --part next re-runs a refused part


def test_a_part_made_with_other_settings_is_refused(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    fake_part(suite, "one", ["BehaviorLM"])
    fake_part(suite, "two", ["zero-shot"])
    changed = load_suite(write_suite(tmp_path, selection={"k": 3}))
    with pytest.raises(PartFileError, match="made with other suite settings"):
        merge_parts(changed, lambda s: None)
    assert not (Path(suite.out_dir) / "results.json").exists()
    # Where files go is not a setting: another out_dir or cache_dir merges the same parts.
    moved = load_suite(write_suite(tmp_path, cache_dir=str(tmp_path / "elsewhere")))
    assert merge_parts(moved, lambda s: None)["complete"] is True


def test_parts_made_on_other_data_are_refused(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    fake_part(suite, "one", ["BehaviorLM"], data_fp="data-1")
    two = fake_part(suite, "two", ["zero-shot"], data_fp="data-2")
    with pytest.raises(PartFileError, match="made on other data") as err:
        merge_parts(suite, lambda s: None)
    assert str(two) in str(err.value)
    with pytest.raises(PartFileError, match="made on other data"):  # against the data prepared now
        fake_part(suite, "two", ["zero-shot"], data_fp="data-1")
        merge_parts(suite, lambda s: None, data_fp="data-3")


def test_an_incomplete_part_is_not_merged(tmp_path):
    """The rule (docs/benchmark.md): a part file with complete: false (killed, or still running) stays out of
    the merge and is listed as missing; its finished steps are in the step cache, so re-running it is cheap."""
    suite = load_suite(write_suite(tmp_path))
    fake_part(suite, "one", ["BehaviorLM"])
    fake_part(suite, "two", ["zero-shot"], complete=False)
    merged = merge_parts(suite, lambda s: None)
    assert set(merged["variants"]) == {"BehaviorLM"} and merged["complete"] is False
    assert merged["parts"]["missing"] == ["two"] and merged["parts"]["incomplete"] == ["two"]
    assert done_parts(suite) == ["one"]


def _run_next(suite_path: str, signals: str, name: str) -> None:
    """A process running ``--part next`` whose part 'training' is a fake that waits for the test's signal."""
    from behaviorlm_plugin.runs.bench import runner as runner_mod

    sig = Path(signals)

    def fake_run(self) -> dict:
        (sig / f"{name}-runs-{self.part.name}").write_text("")
        if name == "a":
            _wait(sig / "go")
        fake_part(self.suite, self.part.name, list(self.part.variants))
        return {}

    runner_mod.BenchRunner.run = fake_run
    merged = runner_mod.run_parts(load_suite(suite_path), ["next"], log=lambda s: None)
    (sig / f"{name}-done.json").write_text(json.dumps(merged["parts"]))


def _wait(path: Path, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout  # a guard against a hang, not a measurement
    while not path.exists():
        assert time.monotonic() < deadline, f"never saw {path}"
        time.sleep(0.01)


def test_two_processes_running_next_take_different_parts_and_both_land(tmp_path):
    import multiprocessing as mp

    path, sig = write_suite(tmp_path), tmp_path / "sig"
    sig.mkdir()
    ctx = mp.get_context("fork")
    a = ctx.Process(target=_run_next, args=(str(path), str(sig), "a"))
    a.start()
    _wait(sig / "a-runs-one")  # a holds part one, mid-run
    b = ctx.Process(target=_run_next, args=(str(path), str(sig), "b"))
    b.start()
    b.join(120)
    assert b.exitcode == 0 and (sig / "b-runs-two").exists() and not (sig / "b-runs-one").exists()
    assert json.loads((sig / "b-done.json").read_text())["done"] == ["two"]
    (sig / "go").write_text("")
    a.join(120)
    assert a.exitcode == 0
    final = json.loads((sig / "a-done.json").read_text())
    assert final["done"] == ["one", "two"] and final["missing"] == []
    suite = load_suite(path)
    assert done_parts(suite) == ["one", "two"]
    assert json.loads((Path(suite.out_dir) / "results.json").read_text())["complete"] is True
