"""Export: merge the B-Tuning LoRA into the base model with LLaMA-Factory, then check the merge.

B-Tuning continued the A-Tuning adapter, so one adapter holds both stages.  The check scores the
same candidates with the merged model and with base + adapter (float32) and compares them.  The export
then gets a ``behaviorlm.json`` beside its weights (candidates, categories, prior, prompt settings, alpha),
so ``behaviorlm serve --model EXPORT_DIR`` needs nothing else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from behaviorlm_plugin.data.dataset import DatasetStats, load_split
from behaviorlm_plugin.data.serving_manifest import ServingManifest, write_manifest
from behaviorlm_plugin.extras.constants import STATS_FILE
from behaviorlm_plugin.extras.fileio import atomic_write_text
from behaviorlm_plugin.extras.pause import pause_point
from behaviorlm_plugin.hparams.tuning_args import ExportCheckArguments


def export_and_verify(
    cfg: dict, yaml_path: Path, *, data: str, check: ExportCheckArguments, alpha: float | None = None
) -> dict:
    """Run LLaMA-Factory's export with ``cfg`` (written to ``yaml_path``), then :func:`verify_export`, then
    :func:`write_serving_manifest` from the ``stats.json`` beside ``data`` (``alpha``: the prior correction's alpha
    chosen on val, if any)."""
    from llamafactory.train.tuner import export_model

    out = Path(cfg["export_dir"])
    shutil.rmtree(out, ignore_errors=True)
    atomic_write_text(yaml_path, yaml.safe_dump(cfg, sort_keys=False))
    export_model(dict(cfg))
    pause_point("export.merged")  # tests: a kill here has merged weights but no check and no behaviorlm.json
    result = verify_export(
        base=cfg["model_name_or_path"],
        adapter=cfg["adapter_name_or_path"],
        merged=str(out),
        template=cfg["template"],
        data=data,
        n=check.samples,
        tolerance=check.tolerance,
        prob_tolerance=check.prob_tolerance,
    )
    if not result["ok"]:
        raise RuntimeError(f"[export] merged model disagrees with base+adapter: {result}")
    write_serving_manifest(out, Path(data).parent / STATS_FILE, cfg["template"], alpha)
    return result


def write_serving_manifest(
    export_dir: str | Path, stats_path: str | Path, template: str | None, alpha: float | None = None
) -> Path:
    """``EXPORT_DIR/behaviorlm.json``: what serving the export needs, from the tuning dataset's ``stats.json``."""

    manifest = ServingManifest.from_stats(DatasetStats.read(stats_path), template=template, alpha=alpha)
    return write_manifest(export_dir, manifest)


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

    from behaviorlm_plugin.model.scoring import CandidateScorer  # deferred: torch, only when verifying

    recs, metas = load_split(data, max_samples=n)
    prompts = [(r.get("system"), r["instruction"]) for r in recs]
    cands = [m["candidates"] for m in metas]
    config = json.loads((Path(merged) / "config.json").read_text())
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    ref = CandidateScorer.from_pretrained(
        base, adapter, template=template, show_progress=False, dtype="float32", merge_adapter="never"
    )
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
