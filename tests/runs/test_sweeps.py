"""Sweep rows carry {param, value} from the config; nothing is parsed back from a display name."""

from pathlib import Path

import yaml

from behaviorlm_plugin.runs.bench.report import report_markdown
from behaviorlm_plugin.runs.bench.results import assemble_results, sweep_rows
from behaviorlm_plugin.runs.bench.runner import load_suite

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"


def suite(tmp_path: Path):
    cfg = {
        "name": "s",
        "model_name_or_path": "m",
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning")},
        "prepare": {"synthetic": True, "dataset_dir": str(tmp_path / "data"), "name": "beh"},
        "a_tuning": {"anchors": 10, "aux_ratio": 0.1},
        "selection": {"k": 2, "strategy": "dds"},
        "variants": [{"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"}],
        "sweeps": {"aux_ratio": [0.3, 0], "k": [5, 1]},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return load_suite(path)


def test_sweep_rows_take_their_values_from_the_config(tmp_path):
    s = suite(tmp_path)
    rows = [v for v in s.variants if v.group == "sweep"]
    assert [(v.sweep.param, v.sweep.value) for v in rows] == [
        ("aux_ratio", 0.3),
        ("aux_ratio", 0.0),
        ("k", 5),
        ("k", 1),
    ]
    for v in rows:
        if v.sweep.param == "k":
            assert v.selection.k == v.sweep.value and v.a_tuning.aux_ratio == 0.1
        else:
            assert v.a_tuning.aux_ratio == v.sweep.value and v.selection.k == 2
        assert v.selection.strategy == "dds" and v.a_tuning.anchors == 10  # the rest equals ours


def test_report_reads_sweep_values_from_rows_not_names(tmp_path):
    s = suite(tmp_path)
    for i, v in enumerate(s.variants):
        v.name = f"row {i}"  # names that say nothing about the value
    s.ours = "row 0"
    per_seed = {0: {"metrics": {"test_balanced": {"acc_tail": 0.1}}, "train_samples": 7, "steps": []}}
    results = assemble_results(s, {v.name: per_seed for v in s.variants}, None, [], 1.0)
    assert [r["sweep"]["value"] for _, r in sweep_rows(results, "k")] == [1, 5]
    assert [r["sweep"]["value"] for _, r in sweep_rows(results, "aux_ratio")] == [0.0, 0.3]
    text = report_markdown({**results, "machine": {**results["machine"], "torch": "x"}})
    assert "| row 4 | 1 | 7 |" in text and "| row 3 | 5 | 7 |" in text  # k column from the row's sweep field
