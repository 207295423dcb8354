"""Rules of the bench's results that need no model: the oracle's best α is picked on val, and a column whose split
was not scored is n/a, never read off another split."""

from behaviorlm_plugin.runs.bench.evidence import bootstrap_table, oracle_best, oracle_best_point
from behaviorlm_plugin.runs.bench.results import columns


def _frontier(test_acc: list[float]) -> list[dict]:
    val = [0.10, 0.30, 0.20]
    points = zip((0.0, 0.5, 1.0), test_acc, val, strict=True)
    return [{"alpha": a, "Acc_avg": t, "val_Acc_avg": v} for a, t, v in points]


def test_the_oracle_best_alpha_is_chosen_on_val_and_test_moves_no_choice():
    first = {"oracle_frontier": _frontier([0.2, 0.3, 0.4])}
    changed = {"oracle_frontier": _frontier([0.9, 0.1, 0.95])}  # test_balanced changed; val did not
    assert oracle_best_point(first)["alpha"] == oracle_best_point(changed)["alpha"] == 0.5
    assert oracle_best(first) == 0.3 and oracle_best(changed) == 0.1  # read on test at the val-chosen alpha
    legacy = {"oracle_frontier": [{"alpha": 0.0, "Acc_avg": 0.2}, {"alpha": 1.0, "Acc_avg": 0.4}]}
    assert oracle_best_point(legacy)["alpha"] == 1.0  # results without val on the frontier


def test_a_column_whose_split_was_not_scored_is_missing_not_borrowed():
    metrics = {"test": {"weighted_precision": 0.5, "weighted_recall": 0.4, "acc_avg": 0.1, "acc_tail": 0.0}}
    cols = columns(metrics)
    assert cols["wR"] == 0.4 and cols["Acc_avg"] is None and cols["tail"] is None
    results = {
        "ours": "o",
        "categories": ["head", "tail"],
        "eval_samples": {"test": {"ids": ["a", "b"], "labels": [0, 1]}},
        "variants": {
            "o": {"per_seed": {"0": {"predictions": {"test": [0, 1]}}}},
            "x": {"per_seed": {"0": {"predictions": {"test": [0, 0]}}}},
        },
    }
    table = bootstrap_table(results, n_boot=50)
    assert "wR" in table["x"] and "Acc_avg" not in table["x"]  # test_balanced was not scored


def test_the_cpu_report_says_how_many_samples_the_stages_went_through(tmp_path):
    import json

    from behaviorlm_plugin.runs.report import plain_words, samples_seen

    (tmp_path / "a_tuning").mkdir()
    (tmp_path / "a_tuning" / "trainer_state.json").write_text(json.dumps({"global_step": 7, "train_batch_size": 4}))
    (tmp_path / "a_tuning.yaml").write_text("gradient_accumulation_steps: 2\n")
    assert samples_seen(tmp_path, "a_tuning") == 56 and samples_seen(tmp_path, "b_tuning") is None
    rows = {"test": {"n": 40, "weighted_recall": 0.3, "acc_avg": 0.05}}
    text = plain_words(rows, {}, cpu=True, samples={"a_tuning": 56, "b_tuning": 35})
    assert "on 91 training samples (a_tuning: 56, b_tuning: 35)" in text and "few hundred" not in text


def test_the_shipped_cpu_pipeline_keeps_its_stage_fingerprints():
    """The step layer reshaped the prepare and evaluation blocks; the pipeline still fingerprints them as before,
    so a run made before it is not redone (these digests were computed by the code before the blocks)."""
    from pathlib import Path

    from behaviorlm_plugin.extras.hashing import digest
    from behaviorlm_plugin.runs.pipeline import PipelineRunner, load_pipeline

    root = Path(__file__).resolve().parents[2]
    runner = PipelineRunner(load_pipeline(root / "yaml_recipes" / "smollm2-135m-cpu" / "pipeline.yaml"), log=print)
    assert digest(runner._spec_prepare()) == "73edee7f0f168ca4"
    assert digest(runner._spec_evaluate()["evaluation"]) == "7e1b03201af3694e"
