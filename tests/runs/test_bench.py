"""`behaviorlm bench` on the tiny random Llama: every variant kind, the step cache, seeds, report."""

import json
from pathlib import Path

import pytest
import yaml
from small_configs import FAST_TRAIN, small_synthetic_prepare

from behaviorlm_plugin.cli import main as cli_main
from behaviorlm_plugin.runs.bench.cache import StepCache
from behaviorlm_plugin.runs.bench.report import report_markdown
from behaviorlm_plugin.runs.bench.results import summarize, verdict
from behaviorlm_plugin.runs.bench.runner import BenchError, BenchRunner, load_suite

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"
FAST = {**FAST_TRAIN, "max_steps": 1, "plot_loss": False}  # no loss PNG per training run; the pipeline tests keep it
# Two seeds where a test reads the second one (seed spread, matched counts, the seed-set change, and the sweeps:
# k=1 is BehaviorLM itself, so its paired bootstrap delta is exactly 0 only over the same seeds); one elsewhere,
# since every further row at seed 1 is one more training run that proves nothing new.
TWO_SEEDS = ("zero-shot", "full-ft", "BehaviorLM", "λ=0", "λ=0.5", "k=1", "k=2")
S0 = {"seeds": [0]}
VARIANTS = [
    {"name": "zero-shot", "kind": "zero_shot", "group": "baseline"},
    {"name": "full-ft", "kind": "full_ft", "group": "baseline", "train_samples": "matched"},
    {"name": "anchor-only", "kind": "anchor_only", "group": "baseline", **S0},
    {"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"},
    {"name": "uniform", "kind": "behaviorlm", "selection": {"strategy": "uniform"}, **S0},
    {"name": "w/o A-Tuning", "kind": "behaviorlm", "skip_a_tuning": True, **S0},
    {"name": "reverse", "kind": "reverse", **S0},
    {"name": "oracle", "kind": "oracle", "group": "oracle", **S0},
    {"name": "oracle (balanced rule)", "kind": "oracle", "group": "oracle", "prior_correction": 1.0, **S0},
    {"name": "BehaviorLM (tuned α)", "kind": "behaviorlm", "group": "baseline", "prior_correction": "auto", **S0},
    {
        "name": "full-ft + adjustment",
        "kind": "full_ft",
        "group": "baseline",
        "train_samples": "matched",
        "prior_correction": "auto",
        **S0,
    },
]
ROWLESS_KINDS = ("oracle", "sasrec")


def write_suite(tmp: Path, tiny_model: Path, data_dir: Path | None = None, **extra) -> Path:
    cfg = {
        "name": "tiny",
        "model_name_or_path": str(tiny_model),
        "template": "smollm2",
        "recipes": {"a_tuning": str(RECIPES / "a_tuning.yaml"), "b_tuning": str(RECIPES / "b_tuning.yaml")},
        "overrides": {"a_tuning": FAST, "b_tuning": FAST},
        "prepare": small_synthetic_prepare(data_dir or tmp / "data"),
        "cache_dir": str(tmp / "cache"),
        "out_dir": str(tmp / "out"),
        "seeds": [0, 1],
        "a_tuning": {"anchors": 6, "aux_ratio": 0.5},
        "selection": {"k": 1, "chunk_size": 2, "max_scored_per_class": 2, "batch_size": 8},
        "evaluation": {
            "splits": ["val", "test", "test_balanced"],
            "val": {"max_samples": 8},
            "test": {"max_samples": 6},
            "test_balanced": {"max_per_class": 1},
            "batch_size": 8,
        },
        "variants": VARIANTS,
        "sweeps": {"aux_ratio": [0.0, 0.5], "k": [1, 2]},
        "sasrec": {
            "grid": {"lr": [1e-3, 3e-3]},
            "config": {"d_model": 16, "n_heads": 2, "max_epochs": 2, "patience": 1, "batch_size": 64},
            "train_sizes": [50, 100],
            "prior_correction_row": True,
            "logit_adjusted_loss": True,
        },
    }
    cfg.update(extra)
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, tiny_model, small_data_dir, fake_evaluation_plots):
    tmp = tmp_path_factory.mktemp("bench")
    logs: list[str] = []
    results = BenchRunner(load_suite(write_suite(tmp, tiny_model, small_data_dir)), log=logs.append).run()
    return tmp, results, logs


def test_every_variant_and_seed_has_metrics(bench_run):
    tmp, results, _ = bench_run
    names = [v["name"] for v in VARIANTS] + ["λ=0", "λ=0.5", "k=1", "k=2", "SASRec"]
    names += ["SASRec + prior correction", "SASRec (logit-adjusted loss)"]
    assert sorted(results["variants"]) == sorted(names)
    for name, v in results["variants"].items():
        both = name in TWO_SEEDS or v["kind"] == "sasrec"  # SASRec runs at every suite seed
        assert set(v["per_seed"]) == ({"0", "1"} if both else {"0"}), name
        assert v["seeds"] == (2 if both else 1), name
        assert 0.0 <= v["mean"]["wR"] <= 1.0 and 0.0 <= v["mean"]["Acc_avg"] <= 1.0
    assert (tmp / "out" / "results.json").exists()
    saved = json.loads((tmp / "out" / "results.json").read_text())
    assert saved["suite"] == "tiny" and saved["complete"] is True


def test_shared_steps_run_once(bench_run):
    _, results, logs = bench_run
    v = results["variants"]
    # One A-Tuning per seed feeds BehaviorLM, uniform, the k sweep and λ=0.5 (the same config).
    a_keys = {
        s: next(st["key"] for st in v["BehaviorLM"]["per_seed"][s]["steps"] if st["kind"] == "train") for s in "01"
    }
    assert a_keys["0"] != a_keys["1"]  # seeds differ
    for other in ("uniform", "k=1", "k=2", "λ=0.5"):
        assert next(st["key"] for st in v[other]["per_seed"]["0"]["steps"] if st["kind"] == "train") == a_keys["0"]
    trained = [line for line in logs if line.startswith("[bench] train ") and line.endswith("running")]
    assert len(trained) == len(set(trained))  # no step ran twice
    # Zero-shot is evaluated once for both seeds, so its spread is exactly zero.
    assert results["steps"]["eval"]["cache_hits"] >= 1
    zs = v["zero-shot"]["per_seed"]
    assert zs["0"]["metrics"] == zs["1"]["metrics"]
    assert v["zero-shot"]["std"]["wR"] == 0.0
    # k=1 is BehaviorLM itself: identical metrics, from the cache.
    assert v["k=1"]["per_seed"]["0"]["metrics"] == v["BehaviorLM"]["per_seed"]["0"]["metrics"]
    assert all(st["cached"] for st in v["k=1"]["per_seed"]["0"]["steps"])
    # Every row records its training stages' loss (A then B for BehaviorLM), model-free rows none.
    loss = v["BehaviorLM"]["per_seed"]["0"]["loss"]
    assert len(loss) == 2 and all(stage["steps"] >= 1 and stage["curve"] for stage in loss)
    assert v["zero-shot"]["per_seed"]["0"]["loss"] == []


def test_variant_semantics(bench_run):
    tmp, results, _ = bench_run
    v = results["variants"]
    kinds = {n: [st["kind"] for st in v[n]["per_seed"]["0"]["steps"]] for n in v if v[n]["kind"] != "sasrec"}
    assert kinds["zero-shot"] == ["eval"]
    assert kinds["anchor-only"] == ["mix", "train", "eval"]
    assert kinds["BehaviorLM"] == ["mix", "train", "select", "train", "eval"]
    assert kinds["w/o A-Tuning"] == ["select", "train", "eval"]
    assert kinds["reverse"] == ["subset", "train", "select", "train", "eval"]
    # The reverse curriculum's first stage holds only medium/tail behaviors.
    stats = json.loads((load_suite(tmp / "suite.yaml").data_base / "stats.json").read_text())["behaviors"]
    key = v["reverse"]["per_seed"]["0"]["steps"][0]["key"]
    rows = [json.loads(line) for line in (tmp / "cache" / "subset" / key / "data.jsonl").read_text().splitlines()]
    assert rows and {stats[r["output"]]["head_medium_tail"] for r in rows} <= {"medium", "tail"}
    assert kinds["full-ft"] == ["subset", "train", "eval"]
    assert kinds["full-ft + adjustment"] == ["subset", "train", "eval", "prior_correction"]
    assert kinds["oracle"] == ["oracle"] and kinds["oracle (balanced rule)"] == ["oracle", "prior_correction"]
    # 'matched' full fine-tuning sees as many samples as BehaviorLM's two stages.
    for s in "01":
        assert v["full-ft"]["per_seed"][s]["train_samples"] == v["BehaviorLM"]["per_seed"][s]["train_samples"]
    # anchors 6, λ 0.5 -> 3 aux; λ=0 -> none.
    assert v["anchor-only"]["train_samples"] == 9
    assert v["λ=0"]["per_seed"]["0"]["train_samples"] < v["λ=0.5"]["per_seed"]["0"]["train_samples"]


def test_report_and_plots(bench_run):
    tmp, results, _ = bench_run
    out = tmp / "out"
    text = (out / "report.md").read_text()
    for needle in (
        "## Main table",
        "± ",
        "best baseline",
        "BehaviorLM vs best baseline",
        "## Ablations",
        "λ sweep",
        "k sweep",
        "SASRec search",
        "Sample efficiency",
        "cache hits",
    ):
        assert needle in text, needle
    for plot in ("tail_vs_head.png", "lambda_sweep.png", "k_sweep.png", "sample_efficiency.png"):
        assert (out / plot).stat().st_size > 1000, plot
    assert set(results["sasrec_curve"]) == {"50", "100"}
    assert results["machine"]["torch"]


def test_rerun_is_all_cache_and_same_results(bench_run, tiny_model):
    tmp, first, _ = bench_run
    logs: list[str] = []
    again = BenchRunner(load_suite(tmp / "suite.yaml"), log=logs.append).run()
    assert not [line for line in logs if line.endswith("running")]
    for name in first["variants"]:
        assert again["variants"][name]["mean"] == first["variants"][name]["mean"], name


def test_step_cache_resumes_a_killed_step_and_is_path_independent(tmp_path):
    cache = StepCache(tmp_path / "c", log=lambda s: None)
    calls = []

    def build(out):
        calls.append(out)
        (out / "x").write_text("done")
        return {"v": 1}

    def killed(out):
        (out / "x").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.run("demo", {"a": 1}, killed)
    assert [p.name.endswith(".partial") for p in (tmp_path / "c" / "demo").iterdir()] == [True]
    step = cache.run("demo", {"a": 1}, build)  # the killed step is redone, not reused
    assert not step.cached and len(calls) == 1 and (step.dir / "x").read_text() == "done"
    assert [p.name for p in (tmp_path / "c" / "demo").iterdir()] == [step.key]
    assert cache.run("demo", {"a": 1}, build).cached and len(calls) == 1
    assert not cache.run("demo", {"a": 2}, build).cached and len(calls) == 2  # other settings, other key
    (tmp_path / "c").rename(tmp_path / "moved")  # keys hold no paths: a moved cache still hits
    moved = StepCache(tmp_path / "moved", log=lambda s: None).run("demo", {"a": 1}, build)
    assert moved.cached and moved.key == step.key and len(calls) == 2


def test_seed_set_change_reuses_old_seeds(bench_run, tiny_model):
    tmp, first, _ = bench_run
    logs: list[str] = []
    raw = yaml.safe_load((tmp / "suite.yaml").read_text())  # the same suite at seed 1 alone
    for row in [*raw["variants"], raw["sweeps"]]:
        row.pop("seeds", None)
    (tmp / "suite1.yaml").write_text(yaml.safe_dump({**raw, "seeds": [1], "out_dir": str(tmp / "out1")}))
    suite = load_suite(tmp / "suite1.yaml")
    res = BenchRunner(suite, log=logs.append, only=["BehaviorLM"]).run()
    assert not [line for line in logs if line.endswith("running") and "sasrec" not in line]
    new, old = res["variants"]["BehaviorLM"]["per_seed"]["1"], first["variants"]["BehaviorLM"]["per_seed"]["1"]
    assert new["metrics"] == old["metrics"] and new["train_samples"] == old["train_samples"]
    assert [s["key"] for s in new["steps"]] == [s["key"] for s in old["steps"]]
    assert all(s["cached"] for s in new["steps"])


def test_verdict_needs_gap_beyond_noise():
    a = summarize(
        {0: {"metrics": {"test_balanced": {"acc_tail": 0.5}}}, 1: {"metrics": {"test_balanced": {"acc_tail": 0.7}}}}
    )
    b = summarize(
        {0: {"metrics": {"test_balanced": {"acc_tail": 0.4}}}, 1: {"metrics": {"test_balanced": {"acc_tail": 0.5}}}}
    )
    assert verdict(a, b, "tail") == "within noise"  # 0.6 vs 0.45, spreads 0.14 + 0.07
    c = summarize(
        {0: {"metrics": {"test_balanced": {"acc_tail": 0.1}}}, 1: {"metrics": {"test_balanced": {"acc_tail": 0.1}}}}
    )
    assert verdict(a, c, "tail") == "win" and verdict(c, a, "tail") == "loss"
    one = summarize({0: {"metrics": {"test_balanced": {"acc_tail": 0.9}}}})
    assert verdict(one, c, "tail") == "1 seed: no verdict"


def test_report_only_cli(bench_run, capsys):
    tmp, _, _ = bench_run
    (tmp / "out" / "report.md").unlink()
    assert cli_main(["bench", str(tmp / "suite.yaml"), "--report-only"]) == 0
    assert "## Main table" in (tmp / "out" / "report.md").read_text()
    assert report_markdown(json.loads((tmp / "out" / "results.json").read_text())).startswith("# Benchmark `tiny`")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ours": "nope"}, "is not a variant"),
        ({"seeds": []}, "seeds must be"),
        ({"sweeps": {"lr": [1]}}, r"sweeps\.lr: unknown key"),
        ({"variants": [*VARIANTS, {"name": "zero-shot", "kind": "zero_shot"}]}, "duplicate variant names"),
        ({"variants": [*VARIANTS, {"name": "x", "kind": "full_ft"}]}, "full_ft needs train_samples"),
        ({"variants": [*VARIANTS, {"name": "x", "kind": "magic"}]}, "kind must be"),
        ({"recipes": {"a_tuning": "missing.yaml", "b_tuning": "missing.yaml"}}, "not found"),
        ({"bogus": 1}, "unknown key"),
        ({"selection": {"strategy": "magic"}}, "strategy must be one of"),
        ({"selection": {"k": "many"}}, r"selection\.k: expected an integer"),
        ({"variants": [*VARIANTS, {"name": "x", "kind": "zero_shot", "seeds": [9]}]}, "must be a non-empty subset"),
    ],
)
def test_bad_suites_are_refused(tmp_path, tiny_model, change, message):
    path = write_suite(tmp_path, tiny_model, **change)
    with pytest.raises(BenchError, match=message):
        load_suite(path)


def test_shipped_suites_parse():
    for name in ("quick", "paper", "gpu-main", "gpu-ablations"):
        suite = load_suite(ROOT / "yaml_recipes" / "bench" / f"{name}.yaml")
        assert {"behaviorlm", "full_ft" if name != "gpu-ablations" else "reverse"} <= {v.kind for v in suite.variants}
    paper = load_suite(ROOT / "yaml_recipes" / "bench" / "paper.yaml")
    assert {v.kind for v in paper.variants} >= {"zero_shot", "anchor_only", "behaviorlm", "full_ft", "reverse"}
    assert {"baseline", "ours", "ablation", "sweep"} <= {v.group for v in paper.variants}
    quick = load_suite(ROOT / "yaml_recipes" / "bench" / "quick.yaml")
    assert "oracle" in {v.kind for v in quick.variants} and quick.note.startswith("**Harness smoke test")
    assert {v.prior_correction.setting for v in quick.variants} >= {0.0, 1.0, "auto"}
    for stage in ("a_tuning", "b_tuning"):  # pinned, so a change to the CPU recipes cannot change the suite
        pinned = quick.overrides.of(stage)
        assert pinned["learning_rate"] == 1e-4 and pinned["num_train_epochs"] == 1 and pinned["cutoff_len"] == 640
    paper = load_suite(ROOT / "yaml_recipes" / "bench" / "paper.yaml")
    assert len(paper.seeds) == 5 and paper.sweeps.k == [5, 10, 20, 50]
    assert paper.sweeps.aux_ratio == [0, 0.025, 0.05, 0.1, 0.2]


def test_one_gpu_suite_trains_in_bf16_on_the_gpu():
    suite = load_suite(ROOT / "yaml_recipes" / "bench" / "smollm2-1gpu.yaml")
    for stage in ("a_tuning", "b_tuning"):
        assert suite.overrides.of(stage)["use_cpu"] is False and suite.overrides.of(stage)["bf16"] is True
        assert suite.overrides.of(stage)["learning_rate"] == 1e-4 and suite.overrides.of(stage)["cutoff_len"] == 640
    assert {v.kind for v in suite.variants} >= {"zero_shot", "full_ft", "anchor_only", "behaviorlm"}


def test_oracle_adjusted_rows_and_bootstrap(bench_run):
    tmp, results, _ = bench_run
    v = results["variants"]
    # The oracle scores exactly the samples every row is scored on, and its balanced rule trades head for tail.
    ids = results["eval_samples"]
    for name in ("oracle", "BehaviorLM", "SASRec", "SASRec (logit-adjusted loss)"):
        for split in ("val", "test", "test_balanced"):
            assert len(v[name]["per_seed"]["0"]["predictions"][split]) == len(ids[split]["ids"]), (name, split)
    assert v["oracle"]["mean"]["wR"] >= v["oracle (balanced rule)"]["mean"]["wR"]
    assert v["oracle (balanced rule)"]["alpha"] == 1.0 and v["oracle"]["alpha"] == 0.0
    # auto rows: alpha chosen on val with the counts behind it, shared steps from the cache.
    choice = v["BehaviorLM (tuned α)"]["per_seed"]["0"]["alpha_choice"]
    assert choice["alpha"] == v["BehaviorLM (tuned α)"]["per_seed"]["0"]["alpha"]
    assert sum(choice["val_counts"].values()) == len(ids["val"]["ids"]) and choice["trials"]
    blm, tuned = (v[n]["per_seed"]["0"]["steps"] for n in ("BehaviorLM", "BehaviorLM (tuned α)"))
    assert [s["key"] for s in tuned[:-1]] == [s["key"] for s in blm]
    assert "alpha_choice" in v["SASRec + prior correction"]["per_seed"]["0"]
    # The frontier runs alpha 0 -> 1.2; bootstrap rows for every non-ours row, with verdicts.
    alphas = [p["alpha"] for p in results["oracle_frontier"]]
    assert alphas[0] == 0 and alphas[-1] == 1.2
    assert results["oracle_frontier"][0]["wR"] == pytest.approx(v["oracle"]["mean"]["wR"])
    boot = results["bootstrap"]
    assert set(boot) == set(v) - {"BehaviorLM"}
    assert boot["k=1"]["wR"]["delta"] == 0 and boot["k=1"]["wR"]["verdict"] == "within noise"
    text = (tmp / "out" / "report.md").read_text()
    for needle in ("paired bootstrap", "Oracle frontier", "Acc_avg / oracle best", "auto: ", "classes /"):
        assert needle in text, needle
