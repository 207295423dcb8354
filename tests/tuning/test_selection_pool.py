"""train_pool: a selection pool where every behavior has its share, so k per behavior holds for the rare ones too."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from behaviorlm_plugin.extras.fileio import read_jsonl
from behaviorlm_plugin.hparams.selection_args import SelectionArguments
from behaviorlm_plugin.tuning.select_run import run_selection

ROOT = Path(__file__).resolve().parents[2]


def test_train_pool_gives_every_behavior_k_candidates_where_train_all_cannot(tmp_path, tiny_model):
    shutil.copytree(ROOT / "dataset_info", tmp_path / "di")
    demo = tmp_path / "di" / "behavior_demo"
    natural = Counter(m["label"] for m in read_jsonl(demo / "train_all.meta.jsonl"))
    pool = Counter(m["label"] for m in read_jsonl(demo / "train_pool.meta.jsonl"))
    assert set(natural) < set(pool) and min(pool.values()) >= 20 and max(pool.values()) <= 200  # all 35, not some
    assert min(natural.values()) < 5  # the capped natural sample leaves some behaviors a handful
    picked = {}
    for source in ("train_all", "train_pool"):
        args = SelectionArguments(k=5, strategy="uniform", pool=source)
        report = run_selection(
            model=str(tiny_model), dataset_dir=str(tmp_path / "di"), name="behavior_demo", args=args,
            out_path=str(tmp_path / f"{source}.jsonl"), out_json=str(tmp_path / f"{source}.json"),
        )  # fmt: skip
        picked[source] = {b: v["picked"] for b, v in report["per_behavior"].items()}
    assert min(picked["train_pool"].values()) == 5
    assert min(picked["train_all"].values()) < 5
