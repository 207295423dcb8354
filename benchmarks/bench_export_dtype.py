"""How far half precision moves candidate scores: the figures behind the export check's tolerances.

Writes benchmarks/results/export_dtype.json with, against base + adapter in float32:
  - base + adapter run in bf16 (the noise of half precision alone),
  - the adapter merged and exported in bf16 (what LLaMA-Factory writes on GPUs by default),
each as max |Δ log-prob|, max |Δ normalised candidate probability| and top-1 agreement.

Run (after `make quickstart`, which leaves the CPU pipeline's adapter in runs/):
  .venv/bin/python benchmarks/bench_export_dtype.py --model models/SmolLM2-135M-Instruct \
      --adapter runs/smollm2-135m-cpu/b_tuning --data data/behavior/test_balanced.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from behaviorlm_plugin.data.dataset import load_split
from behaviorlm_plugin.extras.fileio import atomic_write_json
from behaviorlm_plugin.model.scoring import CandidateScorer


def compare(ref: list[np.ndarray], other: list[np.ndarray]) -> dict:
    def probs(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max())
        return e / e.sum()

    pairs = list(zip(ref, other, strict=True))
    return {
        "max_abs_logprob_diff": max(float(np.abs(a - b).max()) for a, b in pairs),
        "max_prob_diff": max(float(np.abs(probs(a) - probs(b)).max()) for a, b in pairs),
        "top1_agreement": float(np.mean([np.argmax(a) == np.argmax(b) for a, b in pairs])),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--template", default="smollm2")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--out", default="benchmarks/results/export_dtype.json")
    a = p.parse_args()
    from llamafactory.train.tuner import export_model

    recs, metas = load_split(a.data, max_samples=a.samples)
    prompts = [(r.get("system"), r["instruction"]) for r in recs]
    cands = [m["candidates"] for m in metas]

    def score(model: str, adapter: str | None, dtype: str) -> list[np.ndarray]:
        scorer = CandidateScorer.from_pretrained(model, adapter, template=a.template, show_progress=False, dtype=dtype)
        return scorer.score(prompts, cands)

    ref = score(a.model, a.adapter, "float32")
    with tempfile.TemporaryDirectory() as merged:
        export_model(
            {
                "model_name_or_path": a.model,
                "adapter_name_or_path": a.adapter,
                "template": a.template,
                "finetuning_type": "lora",
                "export_dir": merged,
                "export_device": "cpu",
                "infer_dtype": "bfloat16",
            }
        )
        merged_bf16 = score(merged, None, "auto")
    result = {
        "model": a.model,
        "adapter": a.adapter,
        "samples": len(recs),
        "unmerged_bf16_vs_float32": compare(ref, score(a.model, a.adapter, "bfloat16")),
        "merged_bf16_vs_float32": compare(ref, merged_bf16),
    }
    atomic_write_json(a.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
