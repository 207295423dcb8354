"""``behaviorlm run pipeline.yaml``: the whole progressive pipeline, resumable.

Stages, in order, under ``run_dir``::

    prepare -> a_tuning -> selection -> b_tuning -> evaluate -> export -> report

Each stage has a *fingerprint*: a hash of its own settings, the hashes of the files it reads
and the fingerprints of the stages before it.  ``manifest.json`` records every stage's
fingerprint, inputs (with hashes), outputs, timings and status.  On a re-run a stage whose
fingerprint and outputs are unchanged is reused; anything else (a killed stage, a changed
input) runs again, and so does everything after it.  Nothing stale is ever reused silently.

Training goes through LLaMA-Factory: in-process ``run_exp`` on one device, or
``llamafactory-cli train`` (which launches torchrun) when several GPUs are visible.  The
stage YAMLs are plain LLaMA-Factory YAMLs; the runner only redirects their model, datasets,
adapters and output dirs into the run, and writes the concrete YAML it ran into the run dir.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .fileio import atomic_write_json, atomic_write_text
from .metrics import SUMMARY_KEYS

STAGES = ("prepare", "a_tuning", "selection", "b_tuning", "evaluate", "export", "report")


class PipelineError(ValueError):
    """A bad pipeline file or override; the message names the key and the fix."""


# ----------------------------------------------------------------------------- config
@dataclass
class PipelineConfig:
    r"""A ``pipeline.yaml``: which recipes to chain, on which data and model.

    Paths of stage YAMLs are relative to the pipeline file; everything else relative to
    the working directory (run from the repo root, like LLaMA-Factory's own examples).
    """

    run_dir: str
    model_name_or_path: str
    template: str
    a_tuning: str
    b_tuning: str
    export: str
    prepare: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=lambda: {"splits": ["test", "test_balanced"]})
    overrides: dict = field(default_factory=dict)  # per stage: {"a_tuning": {...}, "b_tuning": {...}, ...}
    skip_a_tuning: bool = False  # the paper's "w/o A-Tuning" ablation: stage 2 starts from the base model
    export_check_samples: int = 4
    export_check_tolerance: float = 2e-3  # float32 exports: max |Δ log-prob| vs base+adapter
    export_check_prob_tolerance: float = 0.1  # bf16/fp16 exports: max |Δ candidate probability| (see verify_export)
    base_dir: str = "."

    def __post_init__(self) -> None:
        for key in ("run_dir", "model_name_or_path", "template", "a_tuning", "b_tuning", "export"):
            if not getattr(self, key):
                raise PipelineError(f"pipeline: '{key}' is required")
        if not self.prepare.get("name") or not self.prepare.get("dataset_dir"):
            raise PipelineError("pipeline: 'prepare' needs at least 'dataset_dir' and 'name' (and a source)")
        unknown = set(self.overrides) - {"a_tuning", "b_tuning", "export"}
        if unknown:
            raise PipelineError(
                f"pipeline: 'overrides' keys must be a_tuning, b_tuning or export, got {sorted(unknown)}"
            )
        splits = self.evaluation.get("splits", [])
        bad = [
            s for s in splits if s not in ("train_all", "train_anchor", "train_tail", "val", "test", "test_balanced")
        ]
        if bad:
            raise PipelineError(f"pipeline: evaluation.splits has unknown split(s) {bad}")

    @property
    def name(self) -> str:
        return self.prepare["name"]

    @property
    def dataset_dir(self) -> str:
        return self.prepare["dataset_dir"]

    def stage_yaml(self, stage: str) -> dict:
        path = Path(self.base_dir) / getattr(self, stage)
        if not path.is_file():
            raise PipelineError(f"pipeline: {stage} recipe {path} not found")
        return yaml.safe_load(path.read_text()) or {}


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(raw: dict, sets: list[str]) -> dict:
    """``--set a.b=c`` style overrides (values parsed as YAML scalars)."""
    out = copy.deepcopy(raw)
    for item in sets:
        if "=" not in item:
            raise PipelineError(f"--set {item!r}: expected key=value, e.g. --set selection.k=10")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise PipelineError(f"--set {key}: {p!r} is not a mapping")
        node[parts[-1]] = _parse_value(value)
    return out


def load_pipeline(path: str | Path, sets: list[str] | None = None) -> PipelineConfig:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: pipeline file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    raw = apply_overrides(raw, sets or [])
    known = set(PipelineConfig.__dataclass_fields__) - {"base_dir"}
    unknown = set(raw) - known
    if unknown:
        raise PipelineError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        return PipelineConfig(**raw, base_dir=str(path.parent))
    except TypeError as err:
        raise PipelineError(f"{path}: {err}") from err


# ----------------------------------------------------------------------------- hashing / manifest
def file_hash(path: str | Path) -> str:
    """sha256 of a file, or of every file under a folder (names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def digest(obj: Any) -> str:
    """Short stable hash of a JSON-able object (stage fingerprints, bench step keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "manifest.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"stages": {}}

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def stage(self, name: str) -> dict:
        return self.data["stages"].get(name, {})

    def set(self, name: str, **kw) -> None:
        self.data["stages"].setdefault(name, {}).update(kw)
        self.save()


# ----------------------------------------------------------------------------- runner
@dataclass
class StageResult:
    outputs: dict[str, str]
    info: dict = field(default_factory=dict)


class PipelineRunner:
    """Runs the stages of one pipeline config; see the module docstring."""

    def __init__(self, cfg: PipelineConfig, *, log: Callable[[str], None] = print, until: str | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.run_dir)
        self.log = log
        if until is not None and until not in STAGES:
            raise PipelineError(f"--until must be one of {STAGES}")
        self.until = until

    # paths
    @property
    def data_base(self) -> Path:
        return Path(self.cfg.dataset_dir) / self.cfg.name

    @property
    def btuning_name(self) -> str:
        return f"{self.cfg.name}_btuning_{digest(str(self.run_dir.resolve()))[:8]}"

    def run(self) -> dict:
        upstream = ""
        for stage in STAGES:
            fn = getattr(self, f"_stage_{stage}")
            spec = getattr(self, f"_spec_{stage}")()
            fingerprint = digest({"stage": stage, "spec": spec, "upstream": upstream})
            prev = self.manifest.stage(stage)
            outputs_ok = prev.get("outputs") and all(Path(p).exists() for p in prev["outputs"].values())
            if (
                prev.get("status") in ("done", "skipped")
                and prev.get("fingerprint") == fingerprint
                and (outputs_ok or prev.get("status") == "skipped")
            ):
                self.log(f"[{stage}] up to date (fingerprint {fingerprint}); reusing {prev.get('outputs', {})}")
                upstream = fingerprint
            else:
                if prev:
                    why = "it was interrupted" if prev.get("status") == "running" else "its inputs changed"
                    self.log(f"[{stage}] re-running: {why}")
                started = time.time()
                self.manifest.set(
                    stage,
                    status="running",
                    fingerprint=fingerprint,
                    inputs=spec,
                    started=started,
                    outputs={},
                    finished=None,
                )
                result = fn()
                status = "skipped" if result is None else "done"
                seconds = round(time.time() - started, 2)
                self.manifest.set(
                    stage,
                    status=status,
                    outputs=result.outputs if result else {},
                    info=result.info if result else {},
                    finished=time.time(),
                    seconds=seconds,
                )
                self.log(f"[{stage}] {status} in {seconds:.1f} s")
                upstream = fingerprint
            if stage == self.until:
                break
        return self.manifest.data

    # ---- prepare
    def _spec_prepare(self) -> dict:
        return {"arguments": self.cfg.prepare}

    def _stage_prepare(self) -> StageResult:
        from .config import PrepareArguments
        from .prepare import ensure_prepared

        args = PrepareArguments(**{**self.cfg.prepare, "overwrite": True})
        reused = ensure_prepared(args, self.log)
        return StageResult({"stats": str(self.data_base / "stats.json")}, {"reused_existing": True} if reused else {})

    # ---- training helpers
    def _train_config(self, stage: str, dataset: str, adapter: str | None) -> dict:
        cfg = self.cfg.stage_yaml(stage)
        cfg.update(
            model_name_or_path=self.cfg.model_name_or_path,
            template=self.cfg.template,
            dataset_dir=self.cfg.dataset_dir,
            dataset=dataset,
            output_dir=str(self.run_dir / stage),
            overwrite_output_dir=True,
        )
        if "eval_dataset" in cfg:
            cfg["eval_dataset"] = f"{self.cfg.name}_val"
        cfg.pop("adapter_name_or_path", None)
        if adapter:
            cfg["adapter_name_or_path"] = adapter
        cfg.update(self.cfg.overrides.get(stage, {}))
        return cfg

    def _train(self, stage: str, cfg: dict) -> StageResult:
        out = Path(cfg["output_dir"])
        shutil.rmtree(out, ignore_errors=True)  # a killed run may have left a partial checkpoint
        out.mkdir(parents=True)
        yaml_path = self.run_dir / f"{stage}.yaml"
        atomic_write_text(yaml_path, yaml.safe_dump(cfg, sort_keys=False))
        launch = run_training(cfg, yaml_path)
        adapter = out / "adapter_model.safetensors"
        if not adapter.exists():
            raise RuntimeError(f"[{stage}] LLaMA-Factory finished but wrote no adapter in {out}")
        return StageResult(
            {"adapter_dir": str(out), "adapter": str(adapter), "yaml": str(yaml_path)}, {"launcher": launch}
        )

    # ---- A-Tuning
    def _spec_a_tuning(self) -> dict:
        if self.cfg.skip_a_tuning:
            return {"skip": True}
        mix = self.data_base / "atuning_mix.jsonl"
        return {
            "config": self._train_config("a_tuning", f"{self.cfg.name}_atuning_mix", None),
            "data_hash": file_hash(mix) if mix.exists() else None,
        }

    def _stage_a_tuning(self) -> StageResult | None:
        if self.cfg.skip_a_tuning:
            self.log("[a_tuning] skipped (skip_a_tuning: the 'w/o A-Tuning' ablation)")
            return None
        return self._train("a_tuning", self._train_config("a_tuning", f"{self.cfg.name}_atuning_mix", None))

    def _stage_adapter(self) -> str | None:
        if self.cfg.skip_a_tuning:
            return None
        return str(self.run_dir / "a_tuning")

    # ---- selection
    def _spec_selection(self) -> dict:
        from .selection import SelectionArguments

        args = SelectionArguments(**self.cfg.selection)
        pool = self.data_base / "train_all.jsonl"
        adapter = self._stage_adapter()
        weights = Path(adapter) / "adapter_model.safetensors" if adapter else None
        return {
            "arguments": vars(args),
            "pool_hash": file_hash(pool) if pool.exists() else None,
            "adapter_hash": file_hash(weights) if weights and weights.exists() else None,
        }

    def _stage_selection(self) -> StageResult:
        from .selection import SelectionArguments, run_selection

        out_json = self.run_dir / "selection.json"
        report = run_selection(
            model=self.cfg.model_name_or_path,
            adapter=self._stage_adapter(),
            template=self.cfg.template,
            dataset_dir=self.cfg.dataset_dir,
            name=self.cfg.name,
            args=SelectionArguments(**self.cfg.selection),
            output_name=self.btuning_name,
            out_json=str(out_json),
        )
        data = Path(self.cfg.dataset_dir) / report["file"]
        return StageResult(
            {"selection": str(out_json), "dataset": str(data)},
            {"scored_total": report["scored_total"], "picked_total": report["picked_total"]},
        )

    # ---- B-Tuning
    def _spec_b_tuning(self) -> dict:
        data = (
            Path(self.cfg.dataset_dir) / self.cfg.name / f"{self.btuning_name.removeprefix(self.cfg.name + '_')}.jsonl"
        )
        return {
            "config": self._train_config("b_tuning", self.btuning_name, self._stage_adapter()),
            "data_hash": file_hash(data) if data.exists() else None,
        }

    def _stage_b_tuning(self) -> StageResult:
        return self._train("b_tuning", self._train_config("b_tuning", self.btuning_name, self._stage_adapter()))

    # ---- evaluate
    def _spec_evaluate(self) -> dict:
        return {"evaluation": self.cfg.evaluation, "adapter_hash": _maybe_hash(self.run_dir / "b_tuning")}

    def _stage_evaluate(self) -> StageResult:
        from .evaluation import evaluate_splits, summary_text

        metrics = evaluate_splits(
            model=self.cfg.model_name_or_path,
            adapter=str(self.run_dir / "b_tuning"),
            template=self.cfg.template,
            data_base=self.data_base,
            evaluation=self.cfg.evaluation,
            out_dir=self.run_dir / "eval",
        )
        outputs, info = {}, {}
        for split, m in metrics.items():
            self.log(summary_text(m, f"BehaviorLM/{split}"))
            outputs[f"{split}_metrics"] = str(self.run_dir / "eval" / split / "metrics.json")
            info[split] = {k: m.get(k) for k in SUMMARY_KEYS}
        return StageResult(outputs, info)

    # ---- export
    def _spec_export(self) -> dict:
        return {"config": self._export_config(), "adapter_hash": _maybe_hash(self.run_dir / "b_tuning")}

    def _export_config(self) -> dict:
        cfg = self.cfg.stage_yaml("export")
        cfg.update(
            model_name_or_path=self.cfg.model_name_or_path,
            template=self.cfg.template,
            adapter_name_or_path=str(self.run_dir / "b_tuning"),
            export_dir=str(self.run_dir / "export"),
        )
        cfg.update(self.cfg.overrides.get("export", {}))
        return cfg

    def _stage_export(self) -> StageResult:
        cfg = self._export_config()
        out = Path(cfg["export_dir"])
        shutil.rmtree(out, ignore_errors=True)
        atomic_write_text(self.run_dir / "export.yaml", yaml.safe_dump(cfg, sort_keys=False))
        from llamafactory.train.tuner import export_model

        export_model(cfg)
        check = verify_export(
            base=self.cfg.model_name_or_path,
            adapter=str(self.run_dir / "b_tuning"),
            merged=str(out),
            template=self.cfg.template,
            data=str(self.data_base / "test_balanced.jsonl"),
            n=self.cfg.export_check_samples,
            tolerance=self.cfg.export_check_tolerance,
            prob_tolerance=self.cfg.export_check_prob_tolerance,
        )
        self.log(
            f"[export] merged ({check['merged_dtype']}) vs base+adapter (float32) over {check['samples']} samples: "
            f"max |Δ log-prob| = {check['max_abs_diff']:.2e}, max |Δ prob| = {check['max_prob_diff']:.2e}, "
            f"top-1 agreement {check['top1_agreement']:.0%}; criterion {check['criterion']} <= {check['tolerance']:g}"
        )
        if not check["ok"]:
            raise RuntimeError(f"[export] merged model disagrees with base+adapter: {check}")
        return StageResult({"export_dir": str(out)}, {"check": check})

    # ---- report
    def _spec_report(self) -> dict:
        return {"evaluate": self.manifest.stage("evaluate").get("fingerprint")}

    def _stage_report(self) -> StageResult:
        from .report import write_report

        path = write_report(self.run_dir, self.manifest.data, self.cfg)
        return StageResult({"report": str(path)})


def _maybe_hash(folder: Path) -> str | None:
    weights = folder / "adapter_model.safetensors"
    return file_hash(weights) if weights.exists() else None


def run_training(cfg: dict, yaml_path: Path) -> str:
    """LLaMA-Factory training: in-process on one device, ``llamafactory-cli train`` (torchrun) on several."""
    import torch

    n_gpus = torch.cuda.device_count()
    if n_gpus > 1 or os.environ.get("FORCE_TORCHRUN") == "1":
        bindir = str(Path(sys.executable).parent)  # llamafactory-cli and torchrun of this environment
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        subprocess.run([str(Path(bindir) / "llamafactory-cli"), "train", str(yaml_path)], check=True, env=env)
        return "llamafactory-cli train (torchrun)"
    from llamafactory.train.tuner import run_exp

    run_exp(copy.deepcopy(cfg))
    if cfg.get("plot_loss"):
        import matplotlib.pyplot as plt

        plt.close("all")  # LLaMA-Factory's loss plot leaves its figure open; many in-process runs add up
    return "run_exp (in-process)"


def verify_export(
    *,
    base: str,
    adapter: str,
    merged: str,
    template: str,
    data: str,
    n: int = 4,
    tolerance: float = 2e-3,
    prob_tolerance: float = 0.1,
) -> dict:
    """The merged checkpoint's candidate scores against base+adapter (in float32) on ``n`` samples.

    A float32 export must match to ``tolerance`` in log-prob.  A bf16/fp16 export (LLaMA-Factory's
    default on GPUs for bf16 models) cannot: half-precision rounding alone moves far-off candidates'
    log-probs by whole nats (3.2 measured for SmolLM2 unmerged in bf16), so there the check is on the
    normalised candidate probabilities, to ``prob_tolerance`` (bf16 noise measured: 0.03-0.04).
    ``benchmarks/bench_export_dtype.py`` reproduces both figures.
    """
    import numpy as np

    from .evaluation import load_split
    from .scoring import CandidateScorer

    recs, metas = load_split(data, max_samples=n)
    prompts = [(r.get("system"), r["instruction"]) for r in recs]
    cands = [m["candidates"] for m in metas]
    config = json.loads((Path(merged) / "config.json").read_text())
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    ref = CandidateScorer.from_pretrained(base, adapter, template=template, show_progress=False, dtype="float32")
    a = ref.score(prompts, cands)
    del ref
    b = CandidateScorer.from_pretrained(merged, template=template, show_progress=False).score(prompts, cands)

    def probs(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max())
        return e / e.sum()

    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
    prob_diff = max(float(np.abs(probs(x) - probs(y)).max()) for x, y in zip(a, b, strict=True))
    top1 = float(np.mean([int(np.argmax(x) == np.argmax(y)) for x, y in zip(a, b, strict=True)]))
    half = dtype in ("bfloat16", "float16")
    ok = prob_diff <= prob_tolerance if half else diff <= tolerance
    return {
        "samples": len(recs),
        "merged_dtype": dtype,
        "max_abs_diff": diff,
        "max_prob_diff": prob_diff,
        "top1_agreement": top1,
        "criterion": "max_prob_diff" if half else "max_abs_diff",
        "tolerance": prob_tolerance if half else tolerance,
        "ok": ok,
    }
