"""One LoRA stage (A-Tuning or B-Tuning) through LLaMA-Factory, as both the pipeline and the bench run it.

A-Tuning trains a fresh LoRA on the anchor mix; B-Tuning continues that adapter on the selected
hard samples.  Both are the same call with a different :class:`~behaviorlm_plugin.tuning.launcher.TrainJob`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from behaviorlm_plugin.extras.fileio import atomic_write_text
from behaviorlm_plugin.hparams.tuning_args import FrozenReuseArguments
from behaviorlm_plugin.tuning.launcher import run_training

ADAPTER_FILE = "adapter_model.safetensors"


def train_stage(
    cfg: dict,
    yaml_path: Path,
    *,
    clean: bool = True,
    reuse: FrozenReuseArguments | None = None,
    stock_forward: bool = False,
) -> dict:
    """Write the concrete YAML, train, and check that an adapter came out; returns launch info.

    ``clean`` empties ``output_dir`` first: a killed run may have left a partial checkpoint.
    """
    out = Path(cfg["output_dir"])
    if clean:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(yaml_path, yaml.safe_dump(cfg, sort_keys=False))
    launcher = run_training(
        cfg, yaml_path, pause=f"train.step:{yaml_path.stem}", reuse=reuse, stock_forward=stock_forward
    )
    if not (out / ADAPTER_FILE).exists():
        raise RuntimeError(f"[{yaml_path.stem}] LLaMA-Factory finished but wrote no adapter in {out}")
    return {"launcher": launcher, "adapter_dir": str(out), "adapter": str(out / ADAPTER_FILE), "yaml": str(yaml_path)}
