"""Recompute a pipeline run's reference rows (majority and hour+place) with the current code, on exactly the
samples its model was scored on, and rewrite its ``reference.json`` (and the rows' lines in ``report.md``).

The run's stage fingerprints do not cover code, so ``behaviorlm run`` keeps reference rows written by older code
(the hour+place table before the int8 fix of 2026-12-02, for one). This script reads, for every split in
``RUN_DIR/eval/``:

* the sample ids, in order, from ``RUN_DIR/eval/<split>/preds.jsonl`` (each id's label is checked against the data);
* the prepared data: ``--data DATASET_DIR/NAME``, or the folder of the ``stats.json`` the run's manifest records
  (a relative path there is relative to the directory the run was started from: run this from there too);

and rewrites ``OUT/eval/<split>/reference.json`` (``OUT`` is ``RUN_DIR`` unless ``--out`` says otherwise: a copy of
the run's record without its predictions, such as ``docs/results/smollm2-135m-cpu-pipeline``). Its zero-shot row
is a model's pass and is kept as it is (taken from ``RUN_DIR/eval_zero_shot/<split>/metrics.json`` where the file
has none). In ``OUT/report.md`` the split's reference table and its plain-words sentence are replaced where they
read exactly as the old rows render them; anything else in the report is left alone.

    .venv/bin/python scripts/reference_rows.py runs/smollm2-135m-cpu
    .venv/bin/python scripts/reference_rows.py runs/smollm2-135m-cpu --out docs/results/smollm2-135m-cpu-pipeline
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from behaviorlm_plugin.data.dataset import PreparedDataset
from behaviorlm_plugin.extras.fileio import atomic_write_text, read_jsonl
from behaviorlm_plugin.runs import steps
from behaviorlm_plugin.runs.report import metric_rows_markdown, plain_words


def data_of(run_dir: Path, data: str | None) -> PreparedDataset:
    """The prepared dataset: ``data`` (DATASET_DIR/NAME), or where the run's manifest says prepare wrote stats."""
    if data is None:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        stats = manifest["stages"].get("prepare", {}).get("outputs", {}).get("stats")
        if not stats:
            raise SystemExit(f"{run_dir}/manifest.json records no prepared data; pass --data DATASET_DIR/NAME")
        folder = Path(stats).parent
    else:
        folder = Path(data)
    if not (folder / "stats.json").is_file():
        raise SystemExit(f"{folder}: no stats.json; pass --data DATASET_DIR/NAME (the folder prepare wrote)")
    return PreparedDataset(folder.parent, folder.name)


def check_labels(data: PreparedDataset, split: str, preds: list[dict]) -> None:
    """Each scored sample's label is the data's: the predictions were made on this data, not on a re-prepared one."""
    label = {m["id"]: m["label"] for m in read_jsonl(data.meta_path(split))}
    wrong = [p["id"] for p in preds if p["id"] in label and label[p["id"]] != p["label"]]
    if wrong:
        raise SystemExit(f"{data.path(split)}: {wrong[0]!r} has another label there; the predictions are not from it")


def zero_shot_row(run_dir: Path, old: dict, split: str) -> dict:
    if "zero-shot" in old:
        return old["zero-shot"]
    path = run_dir / "eval_zero_shot" / split / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"{split}: no zero-shot row to keep and no {path}")
    return json.loads(path.read_text())


def update_report(report: Path, split: str, model: dict, old: dict, new: dict) -> list[str]:
    """Replace the split's table and sentence rendered from ``old`` by those from ``new``; what could not be found."""
    text = report.read_text()
    missing = []
    for render in (
        lambda ref: metric_rows_markdown({"BehaviorLM": model, **ref}),
        lambda ref: plain_words({split: model}, {split: ref}, cpu=False).split("\n\n")[0],
    ):
        before, after = render(old), render(new)
        if text.count(before) == 1:
            text = text.replace(before, after)
        elif before != after:
            missing.append(before.splitlines()[0])
    atomic_write_text(report, text)
    return missing


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a pipeline run folder (manifest.json, eval/<split>/preds.jsonl)")
    ap.add_argument("--data", help="the prepared dataset folder DATASET_DIR/NAME (default: the manifest's)")
    ap.add_argument("--out", type=Path, help="the run record to rewrite (default: RUN_DIR)")
    args = ap.parse_args(argv)
    run_dir, out = args.run_dir, args.out or args.run_dir
    data = data_of(run_dir, args.data)
    splits = sorted(p.parent.name for p in (run_dir / "eval").glob("*/preds.jsonl"))
    if not splits:
        raise SystemExit(f"{run_dir}/eval: no <split>/preds.jsonl")
    for split in splits:
        preds = read_jsonl(run_dir / "eval" / split / "preds.jsonl")
        check_labels(data, split, preds)
        path = out / "eval" / split / "reference.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        new = steps.reference_rows(
            data, split, [p["id"] for p in preds], zero_shot_row(run_dir, old, split), path
        )  # writes path
        for name, row in new.items():
            was = old.get(name)
            mark = "" if was == row else f" (was {_brief(was)})" if was else " (new)"
            print(f"{split} {name}: {_brief(row)}{mark}")
        model = out / "eval" / split / "metrics.json"
        if (out / "report.md").is_file() and model.is_file() and old:
            for line in update_report(out / "report.md", split, json.loads(model.read_text()), old, new):
                print(f"{out / 'report.md'}: not found, left as it is: {line}")
    print(f"data: {data.base}; rewrote {out}/eval/*/reference.json")


def _brief(row: dict) -> str:
    cells = (
        f"{k} {row[k]:.4f}" for k in ("weighted_precision", "weighted_recall", "acc_avg") if row.get(k) is not None
    )
    return ", ".join(cells) + f", n {row.get('n')}"


if __name__ == "__main__":
    main()
