"""``behaviorlm run pipeline.yaml``: the whole progressive pipeline, resumable.

Stages, in order, under ``run_dir``::

    prepare -> a_tuning -> selection -> b_tuning -> evaluate -> export -> report

``manifest.json`` records every stage's fingerprint, inputs (with hashes), outputs, timings
and status (see :mod:`behaviorlm_plugin.runs.manifest`).  Training goes through
:mod:`behaviorlm_plugin.tuning` (LLaMA-Factory in-process on one device, ``llamafactory-cli
train`` on several); the concrete YAML of each stage is written into the run dir, and so is
``export.yaml``, which re-runs the merge with ``llamafactory-cli export``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.data.prepare import ADDED_LATER, ensure_prepared
from behaviorlm_plugin.eval.evaluate import summary_text
from behaviorlm_plugin.extras.constants import btuning_dataset_name, dataset_file_stem
from behaviorlm_plugin.extras.hashing import digest, maybe_hash
from behaviorlm_plugin.hparams.data_args import PrepareArguments
from behaviorlm_plugin.hparams.eval_args import EvaluationArguments
from behaviorlm_plugin.hparams.parser import ConfigError, apply_sets, load_config
from behaviorlm_plugin.hparams.pipeline_args import PipelineConfig
from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.runs.manifest import Manifest, Stage, StageResult, run_stages
from behaviorlm_plugin.runs.report import evaluation_rows, plain_words, samples_seen, write_report
from behaviorlm_plugin.tuning.launcher import read_recipe
from behaviorlm_plugin.tuning.lora_stage import ADAPTER_FILE

STAGES = ("prepare", "a_tuning", "selection", "b_tuning", "evaluate", "export", "report")

PipelineError = ConfigError
"""A bad pipeline file or override (kept as a name for callers of the earlier API)."""
apply_overrides = apply_sets


def load_pipeline(path: str | Path, sets: list[str] | None = None) -> PipelineConfig:
    """A ``pipeline.yaml`` with ``--set`` items on top (see :mod:`behaviorlm_plugin.hparams.parser`), its
    registry names checked (format, strategy) so a typo fails now."""
    return check_pipeline(load_config(PipelineConfig, path, sets), str(path))


def check_pipeline(cfg: PipelineConfig, where: str) -> PipelineConfig:
    """The config's registry names (format, strategy), checked where they are used: now, before any stage."""
    try:
        steps.check_names(cfg.prepare, {"selection": cfg.selection})
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from err
    return cfg


def prepare_record(args: PrepareArguments) -> dict:
    """The prepare stage's fingerprinted arguments, in the flat shape runs recorded before the ``engine:`` block,
    so a run made before it is still up to date (the engine settings change speed, never the data)."""
    rec = asdict(args)
    for key in ("pool_per_class", "canary_rule"):
        if rec.get(key) == ADDED_LATER[key]:
            del rec[key]  # added later: at its default it leaves the fingerprint as it was
    engine = rec.pop("engine")
    rec.update({f"engine_{k}": engine[k] for k in ("memory_limit", "threads", "temp_dir")})
    return rec


def evaluation_record(ev: EvaluationArguments) -> dict:
    """The evaluate stage's fingerprinted settings, in the shape runs recorded before the ``prior_correction``
    block (its alpha as ``prior_correction``, then ``head_floor`` and ``alpha_grid``; ``choose_on`` only when it is
    not val), so an earlier run is still up to date."""
    rec = asdict(ev)
    if "val_balanced" not in ev.splits and not any(rec["val_balanced"].values()):
        del rec["val_balanced"]  # a split added later: unused and uncapped, it leaves the fingerprint as it was
    rule = rec.pop("prior_correction")
    rec.update(
        prior_correction=ev.prior_correction.setting, head_floor=rule["head_floor"], alpha_grid=rule["alpha_grid"]
    )
    if rule["choose_on"] != "val":
        rec["choose_on"] = rule["choose_on"]
    return rec


class PipelineRunner:
    """Runs the stage table of one pipeline config; see the module docstring."""

    def __init__(self, cfg: PipelineConfig, *, log: Callable[[str], None] = print, until: str | None = None) -> None:
        if until is not None and until not in STAGES:
            raise ConfigError(f"--until must be one of {', '.join(STAGES)}; got {until!r}")
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.manifest = Manifest(self.run_dir)
        self.log = log
        self.until = until
        self.data = PreparedDataset(cfg.dataset_dir, cfg.name)
        self.model = steps.ModelSpec(cfg.model_name_or_path, cfg.template)
        self.training = steps.TrainSettings(
            model=self.model,
            recipes=cfg.recipes,
            base_dir=cfg.base_dir,
            overrides=cfg.overrides,
            dataset_dir=cfg.dataset_dir,
            eval_dataset=f"{cfg.name}_val",
            lora_top_layers=cfg.lora_top_layers,
            frozen_reuse=cfg.frozen_reuse,
        )

    @property
    def btuning_name(self) -> str:
        """This run's B-Tuning dataset: a per-run name, so two runs on one dataset never share it."""
        return btuning_dataset_name(self.cfg.name, digest(str(self.run_dir.resolve()))[:8])

    def stages(self) -> list[Stage]:
        return [Stage(s, getattr(self, f"_spec_{s}"), getattr(self, f"_stage_{s}")) for s in STAGES]

    def preflight(self) -> None:
        """Everything cheap that a stage would otherwise find late: the model, names and the three recipes."""
        recipes = [self.cfg.recipe_path(stage) for stage in ("a_tuning", "b_tuning", "export")]
        steps.preflight(self.model, self.cfg.prepare, {"selection": self.cfg.selection}, recipes)

    def run(self) -> dict:
        self.preflight()
        self.run_dir.mkdir(parents=True, exist_ok=True)  # only once the cheap checks have passed
        data = run_stages(self.stages(), self.manifest, log=self.log, until=self.until)
        if "export" in data["stages"] and data["stages"]["export"].get("status") == "done":
            self.log(f"[export] to merge again: llamafactory-cli export {self.run_dir / 'export.yaml'}")
        return data

    # ---- prepare
    def _prepare_args(self):
        return self.cfg.prepare

    def _spec_prepare(self) -> dict:
        return {"arguments": prepare_record(self._prepare_args())}

    def _stage_prepare(self) -> StageResult:
        reused = ensure_prepared(self._prepare_args(), self.log)
        return StageResult({"stats": str(self.data.stats_path)}, {"reused_existing": True} if reused else {})

    # ---- LoRA stages
    def stage_arguments(self, stage: str, dataset: str, adapter: str | None) -> dict:
        out = str(self.run_dir / stage)
        return steps.train_config(self.training, stage, dataset=dataset, output_dir=out, init=adapter)

    def _train(self, stage: str, cfg: dict) -> StageResult:
        info = steps.train(cfg, self.run_dir / f"{stage}.yaml", reuse=self.training.frozen_reuse)
        outputs = {k: info[k] for k in ("adapter_dir", "adapter", "yaml")}
        return StageResult(outputs, {"launcher": info["launcher"]})

    def _a_config(self) -> dict:
        return self.stage_arguments("a_tuning", f"{self.cfg.name}_atuning_mix", None)

    def _spec_a_tuning(self) -> dict:
        if self.cfg.skip_a_tuning:
            return {"skip": True}
        return {"config": self._a_config(), "data_hash": maybe_hash(self.data.path("atuning_mix"))}

    def _stage_a_tuning(self) -> StageResult | None:
        if self.cfg.skip_a_tuning:
            self.log("[a_tuning] skipped (skip_a_tuning: the 'w/o A-Tuning' ablation)")
            return None
        return self._train("a_tuning", self._a_config())

    def _stage1_adapter(self) -> str | None:
        return None if self.cfg.skip_a_tuning else str(self.run_dir / "a_tuning")

    # ---- selection
    def _spec_selection(self) -> dict:
        adapter = self._stage1_adapter()
        return {
            "arguments": steps.selection_record(self.cfg.selection),
            "pool_hash": maybe_hash(self.data.path(self.cfg.selection.pool)),
            "adapter_hash": maybe_hash(Path(adapter) / ADAPTER_FILE) if adapter else None,
        }

    def _stage_selection(self) -> StageResult:
        out_json = self.run_dir / "selection.json"
        report = steps.select(
            self.model,
            self._stage1_adapter(),
            self.data,
            self.cfg.selection,
            out_json=out_json,
            output_name=self.btuning_name,
        )
        return StageResult(
            {"selection": str(out_json), "dataset": str(Path(self.cfg.dataset_dir) / report["file"])},
            {"scored_total": report["scored_total"], "picked_total": report["picked_total"]},
        )

    # ---- B-Tuning
    def _b_config(self) -> dict:
        return self.stage_arguments("b_tuning", self.btuning_name, self._stage1_adapter())

    def _spec_b_tuning(self) -> dict:
        data = self.data.path(dataset_file_stem(self.cfg.name, self.btuning_name))
        return {"config": self._b_config(), "data_hash": maybe_hash(data)}

    def _stage_b_tuning(self) -> StageResult:
        return self._train("b_tuning", self._b_config())

    # ---- evaluate
    def _final_adapter(self) -> Path:
        return self.run_dir / "b_tuning"

    def _spec_evaluate(self) -> dict:
        return {
            "evaluation": evaluation_record(self.cfg.evaluation),
            "reference_rows": self.cfg.reference_rows,
            "adapter_hash": maybe_hash(self._final_adapter() / ADAPTER_FILE),
        }

    def _stage_evaluate(self) -> StageResult:
        if self.cfg.reference_rows:  # the base model on the same samples, in the same pass where it can be
            self.log("[evaluate] with reference rows: the base model (zero-shot), majority and hour+place")
        metrics, zero = steps.evaluate(
            self.model,
            str(self._final_adapter()),
            self.data,
            self.cfg.evaluation,
            self.run_dir / "eval",
            zero_shot_dir=self.run_dir / "eval_zero_shot" if self.cfg.reference_rows else None,
        )
        outputs, info = {}, {}
        for split, m in metrics.items():
            self.log(summary_text(m, f"BehaviorLM/{split}"))
            outputs[f"{split}_metrics"] = str(self.run_dir / "eval" / split / "metrics.json")
            info[split] = steps.summary(m)
        for split, zm in (zero or {}).items():  # zero-shot, majority and hour+place on the scored samples
            folder = self.run_dir / "eval" / split
            steps.reference_rows(
                self.data, split, steps.scored_ids(folder / "preds.jsonl"), zm, folder / "reference.json"
            )
            outputs[f"{split}_reference"] = str(folder / "reference.json")
        return StageResult(outputs, info)

    # ---- export
    def export_config(self) -> dict:
        return steps.export_config(
            self.model,
            self.cfg.recipe_path("export"),
            self.cfg.overrides,
            adapter=str(self._final_adapter()),
            export_dir=str(self.run_dir / "export"),
        )

    def _spec_export(self) -> dict:
        return {
            "config": self.export_config(),
            "check": asdict(self.cfg.export_check),
            "adapter_hash": maybe_hash(self._final_adapter() / ADAPTER_FILE),
        }

    def _stage_export(self) -> StageResult:
        cfg = self.export_config()
        # The alpha the evaluation used (fixed, or chosen on val) travels with the model into behaviorlm.json.
        alphas = [v.get("alpha") for v in self.manifest.stage("evaluate").get("info", {}).values()]
        check = steps.export(
            cfg,
            self.run_dir / "export.yaml",
            data=self.data,
            check=self.cfg.export_check,
            alpha=next((a for a in alphas if a is not None), None),
        )
        self.log(
            f"[export] merged ({check['merged_dtype']}) vs base+adapter (float32) over {check['samples']} samples: "
            f"max |Δ log-prob| = {check['max_abs_diff']:.2e}, max |Δ prob| = {check['max_prob_diff']:.2e}, "
            f"top-1 agreement {check['top1_agreement']:.0%}; criterion {check['criterion']} <= {check['tolerance']:g}"
        )
        return StageResult(
            {"export_dir": cfg["export_dir"], "export_yaml": str(self.run_dir / "export.yaml")}, {"check": check}
        )

    # ---- report
    def _spec_report(self) -> dict:
        return {"evaluate": self.manifest.stage("evaluate").get("fingerprint")}

    def _cpu_run(self) -> bool:
        stage = "b_tuning"  # the adapter that is evaluated
        return bool({**read_recipe(self.cfg.recipe_path(stage)), **self.cfg.overrides.of(stage)}.get("use_cpu"))

    def _stage_report(self) -> StageResult:
        path = write_report(self.run_dir, self.manifest.data, self.cfg, cpu=self._cpu_run())
        rows, refs = evaluation_rows(self.manifest.data)
        if rows:
            seen = {stage: samples_seen(self.run_dir, stage) for stage in ("a_tuning", "b_tuning")}
            text = plain_words(rows, refs, cpu=self._cpu_run(), samples=seen)
            self.log("[report] " + text.replace("\n\n", "\n[report] "))
        return StageResult({"report": str(path)})
