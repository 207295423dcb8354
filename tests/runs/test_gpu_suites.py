"""The two one-GPU suites end to end on the tiny model on CPU: part by part, merged, resumable."""

import json
from pathlib import Path

import pytest
import yaml
from small_configs import small_synthetic_prepare

from behaviorlm_plugin.cli import main as cli_main
from behaviorlm_plugin.runs.bench.parts import resolve_parts
from behaviorlm_plugin.runs.bench.runner import BenchError, load_suite
from behaviorlm_plugin.runs.bench.time_model import estimate_part

pytestmark = pytest.mark.usefixtures("fake_evaluation_plots")  # the suites' own plots and report stay real
ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "yaml_recipes" / "bench"
CPU_TRAIN = {  # the suites' best-epoch-on-val settings, on CPU and tiny
    "use_cpu": True,
    "bf16": False,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "num_train_epochs": 1,
    "cutoff_len": 1024,
    "warmup_ratio": 0.0,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "per_device_eval_batch_size": 8,
    "max_steps": 2,
    "max_samples": 8,  # per dataset: the 8 samples two steps train on, and 8 val samples for each epoch's eval loss
    "plot_loss": False,  # no loss PNG per training run; the pipeline tests keep it
}


def shrink(name: str, tmp: Path, tiny_model: Path, data_dir: Path) -> Path:
    """The shipped suite with tiny sizes; rows, parts and rules unchanged."""
    cfg = yaml.safe_load((BENCH / f"{name}.yaml").read_text())
    cfg.update(
        model_name_or_path=str(tiny_model),
        recipes={k: str((BENCH / v).resolve()) for k, v in cfg["recipes"].items()},
        overrides={"a_tuning": CPU_TRAIN, "b_tuning": CPU_TRAIN},
        prepare=small_synthetic_prepare(data_dir),
        cache_dir=str(tmp / "cache"),
        out_dir=str(tmp / name),
        a_tuning={"anchors": 6, "aux_ratio": 0.5},
        selection={"k": 1, "chunk_size": 2, "max_scored_per_class": 2, "batch_size": 8},
        evaluation={
            "splits": ["val", "test", "test_balanced"],
            "val": {"max_samples": 8},
            "test": {"max_samples": 6},
            "test_balanced": {"max_per_class": 1},
            "batch_size": 8,
        },
    )
    cfg["sasrec"].update(grid={"lr": [1e-3]}, config={"d_model": 16, "max_epochs": 2, "patience": 1})
    if cfg["sasrec"].get("train_sizes"):
        cfg["sasrec"]["train_sizes"] = [50, 100]
    if "lr_search" in cfg:
        cfg["lr_search"]["values"] = [1e-4, 1e-3]
    for v in cfg["variants"]:
        if isinstance(v.get("train_samples"), int):
            v["train_samples"] = 12
    if "sweeps" in cfg:
        cfg["sweeps"] = {"aux_ratio": [0, 0.5], "k": [1, 2], "anchors": [4, 6]}
        names = {"λ=0.05": "λ=0.5", "k=20": "k=1", "anchors=5000": "anchors=6", "λ=0.025": None, "λ=0.1": None}
        names |= {"λ=0.2": None, "k=5": "k=2", "k=10": None, "k=50": None, "anchors=1000": "anchors=4"}
        names |= {"anchors=2500": None, "anchors=19000": None}
        for p in cfg["parts"]:
            p["variants"] = [names.get(n, n) for n in p.get("variants", []) if names.get(n, n)]
        cfg["parts"] = [p for p in cfg["parts"] if p["variants"] or p.get("sasrec")]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def data_dir(small_data_dir):
    return small_data_dir  # the same small data as tests/runs/test_bench.py: prepared once per session


def _parts(path: Path) -> dict:
    return json.loads((Path(load_suite(path).out_dir) / "results.json").read_text())


def test_gpu_main_part_by_part(tmp_path, tiny_model, data_dir, capsys):
    path = shrink("gpu-main", tmp_path, tiny_model, data_dir)
    suite = load_suite(path)
    assert all(estimate_part(suite, p) > 0 for p in suite.parts)
    assert cli_main(["bench", str(path), "--list-parts"]) == 0
    assert "search-a" in capsys.readouterr().out
    # A part that trains before its learning-rate search has run is refused, with the part to run first.
    assert cli_main(["bench", str(path), "--part", "main-s0"]) == 1
    assert "run the part(s) that search them first (search-a)" in capsys.readouterr().err
    assert cli_main(["bench", str(path), "--part", "search-a", "--part", "main-s0"]) == 0
    first = _parts(path)
    assert first["complete"] is False and first["parts"]["done"] == ["search-a", "main-s0"]
    assert "BehaviorLM" in first["variants"] and "SASRec" not in first["variants"]
    while _parts(path)["parts"]["missing"]:  # a later call continues where the last stopped
        assert cli_main(["bench", str(path), "--part", "next"]) == 0
    with pytest.raises(BenchError, match="every part"):
        resolve_parts(load_suite(path), ["next"])
    merged = _parts(path)
    assert merged["complete"] is True
    v = merged["variants"]
    assert {"0", "1"} <= set(v["BehaviorLM"]["per_seed"]) and v["BehaviorLM"]["seeds"] == 2
    assert (
        v["full fine-tuning (matched)"]["per_seed"]["0"]["train_samples"]
        == v["BehaviorLM"]["per_seed"]["0"]["train_samples"]
    )
    assert {"SASRec", "SASRec + prior correction", "SASRec (logit-adjusted loss)", "oracle"} <= set(v)
    search = merged["lr_search"]
    for target in ("a_tuning", "full_ft"):
        trials = search[target]["trials"]
        assert search[target]["best"] == max(trials, key=lambda t: (t["val_accuracy"], -t["lr"]))["lr"]
    assert merged["bootstrap"]["full fine-tuning (matched)"]["wR"]["verdict"] in ("win", "loss", "within noise")
    report = (Path(merged_out := load_suite(path).out_dir) / "report.md").read_text()
    assert report.startswith("Main evidence suite") and "Learning-rate search" in report
    assert (Path(merged_out) / "tail_vs_head.png").stat().st_size > 1000
    assert cli_main(["bench", str(path), "--merge"]) == 0


def test_gpu_ablations_part_by_part(tmp_path, tiny_model, data_dir):
    path = shrink("gpu-ablations", tmp_path, tiny_model, data_dir)
    suite = load_suite(path)
    names = [p.name for p in suite.parts]
    assert cli_main(["bench", str(path), "--part", ",".join(names[:2])]) == 0
    assert cli_main(["bench", str(path), "--part", ",".join(names[2:])]) == 0
    merged = _parts(path)
    assert merged["complete"] is True and not merged["parts"]["missing"]
    v = merged["variants"]
    assert {"w/o aux", "B uniform (w/o DDS)", "B w/o CDS", "w/o A-Tuning", "reverse curriculum"} <= set(v)
    assert {"anchors=4", "anchors=6", "k=2", "λ=0"} <= set(v)
    assert set(merged["sasrec_curve"]) == {"50", "100"}
    report = (Path(suite.out_dir) / "report.md").read_text()
    assert "Anchor-count sweep" in report and "anchor sweep" in report
