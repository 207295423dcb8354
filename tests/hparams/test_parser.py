"""The one config parser: YAML, --set and generated flags reach the same typed field, with one precedence."""

from pathlib import Path

import pytest
import yaml

from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.parser import ConfigError, build, parse_cli
from behaviorlm_plugin.hparams.pipeline_args import PipelineConfig
from behaviorlm_plugin.hparams.selection_args import SelectionArguments

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"


def pipeline_yaml(tmp_path: Path, **extra) -> Path:
    cfg = {
        "run_dir": str(tmp_path / "run"),
        "model_name_or_path": "m",
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning", "export")},
        "prepare": {"synthetic": True, "dataset_dir": str(tmp_path / "data"), "name": "beh"},
        **extra,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def parse(argv: list[str]) -> PipelineConfig:
    """As ``behaviorlm run`` parses: the typed config, then its registry names where they are used."""
    from behaviorlm_plugin.runs.pipeline import check_pipeline

    cfg, _ = parse_cli(PipelineConfig, argv, prog="test")
    return check_pipeline(cfg, argv[0])


def test_one_value_three_ways_reaches_the_same_typed_field(tmp_path):
    plain = pipeline_yaml(tmp_path)
    assert parse([str(plain)]).selection.k == SelectionArguments().k  # the dataclass default
    by_yaml = parse([str(pipeline_yaml(tmp_path, selection={"k": 3}))])
    by_set = parse([str(plain), "--set", "selection.k=3"])
    by_flag = parse([str(plain), "--selection.k", "3"])
    for cfg in (by_yaml, by_set, by_flag):
        assert isinstance(cfg.selection, SelectionArguments) and cfg.selection.k == 3
    assert isinstance(by_flag.prepare, PrepareArguments) and by_flag.base_dir == str(tmp_path)


def test_precedence_defaults_yaml_set_flag(tmp_path):
    path = pipeline_yaml(tmp_path, selection={"k": 3, "strategy": "dds"})
    assert parse([str(path), "--set", "selection.k=4"]).selection.k == 4  # --set beats YAML
    both = parse([str(path), "--set", "selection.k=4", "--selection.k", "5"])
    assert both.selection.k == 5  # a flag beats --set
    assert both.selection.strategy == "dds"  # untouched keys keep the YAML value
    # dashes and underscores name the same flag, as in LLaMA-Factory
    assert parse([str(path), "--prepare.dataset-dir", "elsewhere"]).prepare.dataset_dir == "elsewhere"


def test_flat_commands_take_yaml_set_and_flags(tmp_path):
    cfg = tmp_path / "prep.yaml"
    cfg.write_text("synthetic: true\nseed: 1\n")
    args, _ = parse_cli(PrepareArguments, [str(cfg), "--set", "seed=2", "--seed", "3"], prog="t")
    assert args.seed == 3 and args.synthetic is True
    args, _ = parse_cli(PrepareArguments, ["--synthetic", "--dataset_dir", "d", "--max-train-samples", "10"], prog="t")
    assert (args.dataset_dir, args.max_train_samples) == ("d", 10)


@pytest.mark.parametrize(
    ("extra", "sets", "message"),
    [
        ({"a_tuning": "a.yaml"}, [], r"a_tuning: this key was renamed; use 'recipes\.a_tuning'"),
        ({"export_check_samples": 2}, [], r"use 'export_check\.samples'"),
        ({}, ["selection.kk=3"], r"selection\.kk: unknown key \(did you mean 'k'\?\)"),
        ({}, ["selection.k=many"], r"selection\.k: expected an integer, got 'many'"),
        ({}, ["selection.strategy=magic"], "strategy must be one of dds, dds_cds, uniform"),
        ({}, ["evaluation.splits=[train_all]"], "unknown split"),
        ({}, ["prepare=3"], r"prepare: expected a mapping"),
        ({}, ["run_dir="], "'run_dir' is required"),
    ],
)
def test_bad_values_fail_with_the_key(tmp_path, extra, sets, message):
    argv = [str(pipeline_yaml(tmp_path, **extra))] + [a for s in sets for a in ("--set", s)]
    with pytest.raises(ConfigError, match=message):
        parse(argv)


@pytest.mark.parametrize("text", ["- a\n- b\n", "3\n", "words\n", "a: [unclosed\n"])
def test_a_config_file_that_is_not_a_mapping_names_the_file(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"p\.yaml: "):
        parse([str(path)])


def test_build_refuses_missing_required_keys():
    with pytest.raises(ConfigError, match="missing required key"):
        build(PipelineConfig, {"run_dir": "r"}, where="x")
