"""Did tuning move the model? Top-1 agreement of every cached evaluation with the base model's.

Reads a `behaviorlm bench` cache: each `eval/<key>/` step holds the predictions of one model on the
suite's fixed evaluation samples; the step whose model is the base (zero-shot) is the reference.
Run: .venv/bin/python benchmarks/prediction_agreement.py runs/bench-cache
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from behaviorlm_plugin.extras.fileio import read_jsonl


def predictions(step_dir: Path) -> dict[tuple[str, str], str]:
    return {
        (split.name, r["id"]): r["prediction"]
        for split in sorted(p for p in step_dir.iterdir() if (p / "preds.jsonl").exists())
        for r in read_jsonl(split / "preds.jsonl")
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache_dir")
    a = p.parse_args()
    steps = {}
    for d in sorted((Path(a.cache_dir) / "eval").iterdir()):
        if (d / "step.json").exists():  # finished steps only
            steps[d.name] = (json.loads((d / "step.json").read_text())["spec"], predictions(d))
    base = {k: v for k, v in steps.items() if v[0]["model"] is None}
    if not base:
        raise SystemExit(f"{a.cache_dir}: no zero-shot evaluation in the cache; run a suite with a zero_shot row")
    for key, (spec, preds) in steps.items():
        ref = next((p for s, p in base.values() if s["caps"] == spec["caps"] and s["data"] == spec["data"]), None)
        if spec["model"] is None or ref is None:
            continue
        shared = [i for i in preds if i in ref]
        agree = sum(preds[i] == ref[i] for i in shared) / max(1, len(shared))
        top = collections.Counter(preds.values()).most_common(2)
        print(f"adapter {spec['model']} (eval {key}): top-1 agreement with zero-shot {agree:.2f} ", end="")
        print(f"on {len(shared)} samples; most predicted {top}")


if __name__ == "__main__":
    main()
