"""dataset_info/ ships a demo dataset; it must be exactly what `make shipped-data` produces."""

import re
from pathlib import Path

from conftest import small_prepare_args

from behaviorlm_plugin.data.prepare import BEHAVIOR_SPLITS, prepare
from behaviorlm_plugin.data.registry import read_dataset_info

ROOT = Path(__file__).resolve().parents[2]


def _make_args() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    block = re.search(r"SHIPPED_ARGS := (.*?)\n\S", text, re.S).group(1)
    return block.replace("\\\n", " ").split()


def test_shipped_demo_is_reproducible(tmp_path):
    argv = _make_args()
    kw = {}
    i = 0
    while i < len(argv):
        key = argv[i].lstrip("-").replace("-", "_")
        if key == "synthetic":
            kw[key], i = True, i + 1
        else:
            kw[key], i = argv[i + 1], i + 2
    ints = {
        "synthetic_users",
        "synthetic_days",
        "max_train_samples",
        "max_val_samples",
        "max_test_samples",
        "balanced_per_class",
        "seed",
    }
    kw = {k: int(v) if k in ints else v for k, v in kw.items()}
    prepare(small_prepare_args(tmp_path, **kw))
    shipped = ROOT / "dataset_info" / "behavior_demo"
    for split in (*BEHAVIOR_SPLITS, "aux", "atuning_mix"):
        assert (tmp_path / "behavior_demo" / f"{split}.jsonl").read_bytes() == (shipped / f"{split}.jsonl").read_bytes()
    info = read_dataset_info(ROOT / "dataset_info")
    for split in (*BEHAVIOR_SPLITS, "aux", "atuning_mix"):
        assert (ROOT / "dataset_info" / info[f"behavior_demo_{split}"]["file_name"]).exists()
