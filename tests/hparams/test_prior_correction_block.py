"""One prior-correction block, one name: set α by YAML, --set or a flag, for evaluate, the pipeline and serve,
and it reaches the same field; the keys it replaced still load, with a message naming the new key."""

import json
import warnings
from pathlib import Path

import pytest
import yaml

from behaviorlm_plugin.hparams.cli_args import EvaluateArguments
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.parser import ConfigError, MovedKeyWarning, parse_cli
from behaviorlm_plugin.hparams.pipeline_args import PipelineConfig
from behaviorlm_plugin.hparams.prior_correction_args import AUTO, PriorCorrectionArguments
from behaviorlm_plugin.hparams.serve_args import ServeArguments

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"


def _files(tmp_path: Path) -> dict[str, tuple[type, dict, str]]:
    """Per command: its config class, a minimal valid YAML mapping, and where α lives in it."""
    stats = tmp_path / "stats.json"
    stats.write_text("{}")
    preds = tmp_path / "preds.jsonl"
    preds.write_text("")
    pipeline = {
        "run_dir": str(tmp_path / "run"),
        "model_name_or_path": "m",
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning", "export")},
        "prepare": {"synthetic": True},
    }
    return {
        "evaluate": (EvaluateArguments, {"stats": str(stats), "preds": str(preds)}, "prior_correction"),
        "pipeline": (PipelineConfig, pipeline, "evaluation.prior_correction"),
        "serve": (ServeArguments, {"model": "m"}, "prior_correction"),
    }


def _alpha(cfg, where: str) -> PriorCorrectionArguments:
    for part in where.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _nest(where: str, value) -> dict:
    out: dict = value
    for part in reversed(where.split(".")):
        out = {part: out}
    return out


@pytest.mark.parametrize("command", ["evaluate", "pipeline", "serve"])
def test_alpha_each_way_reaches_the_same_field(tmp_path, command):
    cls, base, where = _files(tmp_path)[command]
    seen = []
    for i, (raw, argv) in enumerate(
        [
            (_nest(where, 0.5), []),  # YAML, the shorthand: a bare value is alpha
            (_nest(where, {"alpha": 0.5}), []),  # YAML, the block
            ({}, ["--set", f"{where}=0.5"]),  # --set, the shorthand
            ({}, ["--set", f"{where}.alpha=0.5"]),  # --set, the field
            ({}, [f"--{where}", "0.5"]),  # the block's flag
            ({}, [f"--{where.replace('_', '-')}.alpha", "0.5"]),  # the field's flag
        ]
    ):
        path = tmp_path / f"{command}{i}.yaml"
        merged = {**base, **raw}
        if command == "pipeline" and "evaluation" in raw:
            merged["evaluation"] = raw["evaluation"]
        path.write_text(yaml.safe_dump(merged))
        cfg, _ = parse_cli(cls, [str(path), *argv], prog="t")
        seen.append(_alpha(cfg, where))
    assert all(isinstance(b, PriorCorrectionArguments) and b.alpha == 0.5 for b in seen), seen


def test_auto_and_the_auto_settings_live_in_the_block(tmp_path):
    cls, base, _ = _files(tmp_path)["pipeline"]
    path = tmp_path / "p.yaml"
    rule = {"alpha": "auto", "head_floor": 0.3, "alpha_grid": [0, 1]}
    path.write_text(yaml.safe_dump({**base, "evaluation": {"splits": ["val", "test"], "prior_correction": rule}}))
    cfg, _ = parse_cli(cls, [str(path)], prog="t")
    pc = cfg.evaluation.prior_correction
    assert pc.is_auto and pc.alpha == AUTO and pc.head_floor == 0.3 and pc.alpha_grid == [0.0, 1.0]
    assert pc.choose_on == "val"
    path.write_text(yaml.safe_dump({**base, "evaluation": {"splits": ["test"], "prior_correction": "auto"}}))
    with pytest.raises(ConfigError, match="auto chooses alpha on val; add val to splits"):
        parse_cli(cls, [str(path)], prog="t")


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "lots"])
def test_a_bad_alpha_fails_with_the_key(tmp_path, bad):
    cls, base, _ = _files(tmp_path)["evaluate"]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError, match="prior_correction"):
        parse_cli(cls, [str(path), "--prior-correction", bad], prog="t")


def test_serve_refuses_auto(tmp_path):
    with pytest.raises(ConfigError, match="a server does not have"):
        parse_cli(ServeArguments, ["--model", "m", "--prior-correction", "auto"], prog="t")


def test_moved_keys_still_load_and_name_their_new_place(tmp_path):
    cls, base, _ = _files(tmp_path)["pipeline"]
    path = tmp_path / "old.yaml"
    old_eval = {"splits": ["val", "test"], "prior_correction": "auto", "head_floor": 0.2, "alpha_grid": [0, 0.5]}
    old_prepare = {"synthetic": True, "engine_memory_limit": "1GB", "engine_threads": 1}
    path.write_text(yaml.safe_dump({**base, "evaluation": old_eval, "prepare": old_prepare}))
    with pytest.warns(MovedKeyWarning) as caught:
        cfg, _ = parse_cli(cls, [str(path)], prog="t")
    messages = " ".join(str(w.message) for w in caught)
    assert str(path) in messages
    assert "evaluation.head_floor: this key moved to 'evaluation.prior_correction.head_floor'" in messages
    assert "prepare.engine_memory_limit: this key moved to 'prepare.engine.memory_limit'" in messages
    pc = cfg.evaluation.prior_correction
    assert (pc.alpha, pc.head_floor, pc.alpha_grid) == (AUTO, 0.2, [0.0, 0.5])
    assert (cfg.prepare.engine.memory_limit, cfg.prepare.engine.threads) == ("1GB", 1)


def test_old_flags_still_parse(tmp_path):
    cls, base, _ = _files(tmp_path)["evaluate"]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.warns(MovedKeyWarning, match="head_floor: this key moved to 'prior_correction.head_floor'"):
        cfg, _ = parse_cli(cls, [str(path), "--head-floor", "0.4"], prog="t")
    assert cfg.prior_correction.head_floor == 0.4
    with pytest.warns(MovedKeyWarning, match="engine_memory_limit"):
        args, _ = parse_cli(PrepareArguments, ["--synthetic", "--engine-memory-limit", "3GB"], prog="t")
    assert args.engine.memory_limit == "3GB"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling loads silently
        args, _ = parse_cli(PrepareArguments, ["--synthetic", "--engine.memory_limit", "3GB"], prog="t")
    assert args.engine.memory_limit == "3GB"


def test_no_config_or_flag_keeps_the_old_names():
    """decision_rule, post_hoc and adjust are gone from every config block and flag (they only load as moved)."""
    from behaviorlm_plugin.hparams.bench_args import SuiteConfig
    from behaviorlm_plugin.hparams.fields import user_fields
    from behaviorlm_plugin.hparams.parser import flag_fields

    def names(cls, seen=()):
        out = set()
        for f in user_fields(cls):
            out.add(f.name)
        return out | {name for name, _, _ in flag_fields(cls)}

    every = set()
    for cls in (SuiteConfig, PipelineConfig, EvaluateArguments, ServeArguments, PrepareArguments):
        every |= {part for n in names(cls) for part in n.split(".")}
    assert not every & {"decision_rule", "post_hoc", "adjust", "rule"}


def test_shipped_results_and_exports_still_load():
    """Result files written before the rename render, and the quick-start's version-1 export loads."""
    from behaviorlm_plugin.data.serving_manifest import read_manifest
    from behaviorlm_plugin.runs.bench.report import report_markdown

    for path in sorted((ROOT / "docs" / "results").glob("*/results.json")):
        results = json.loads(path.read_text())
        text = report_markdown(results)
        assert "# Benchmark" in text and results["ours"] in text, path
        if "SASRec + post-hoc adjustment" in results["variants"]:  # the SASRec row's name before the rename
            assert "SASRec + post-hoc adjustment" in text
    manifest = read_manifest(ROOT / "docs" / "results" / "smollm2-135m-cpu-pipeline" / "behaviorlm.json")
    assert manifest.prior_correction.alpha in (None, 0.0) and len(manifest.behaviors) > 2


def test_later_sources_win_over_moved_keys_and_shorthands(tmp_path):
    """A moved key given as a flag beats the YAML's new key; a shorthand in the YAML takes dotted overrides; a
    bare --set value over a block changes alpha only; the old and new spelling in one source is an error."""
    cls, base, _ = _files(tmp_path)["evaluate"]
    path = tmp_path / "e.yaml"

    def parse(raw: dict, *argv: str):
        path.write_text(yaml.safe_dump({**base, **raw}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MovedKeyWarning)
            return parse_cli(cls, [str(path), *argv], prog="t")[0].prior_correction

    block = {"prior_correction": {"alpha": 0.5, "head_floor": 0.2}}
    assert parse(block, "--head-floor", "0.4").head_floor == 0.4
    assert parse({"prior_correction": 0.5}, "--prior-correction", "0.7").alpha == 0.7
    pc = parse({"prior_correction": 0.5}, "--prior_correction.head_floor", "0.3")
    assert (pc.alpha, pc.head_floor) == (0.5, 0.3)
    pc = parse(
        {"prior_correction": {"alpha": 0, "head_floor": 0.35, "alpha_grid": [0, 1]}}, "--set", "prior_correction=2"
    )
    assert (pc.alpha, pc.head_floor, pc.alpha_grid) == (2.0, 0.35, [0.0, 1.0])
    with pytest.raises(ConfigError, match=r"head_floor and prior_correction\.head_floor are one key"):
        parse({"prior_correction": {"head_floor": 0.2}, "head_floor": 0.3})


def test_a_moved_switch_still_takes_no_value(tmp_path):
    from behaviorlm_plugin.hparams.bench_args import SASRecBench

    with pytest.warns(MovedKeyWarning, match="post_hoc: this key moved to 'prior_correction_row'"):
        cfg, _ = parse_cli(SASRecBench, ["--post_hoc"], prog="t", config_file=False)
    assert cfg.prior_correction_row is True
