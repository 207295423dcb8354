"""Recipe -> LLaMA-Factory arguments, with one documented precedence, and the training launch.

The pipeline and the bench both build their training and export arguments here, so the same
recipe with the same overrides gives the same arguments everywhere.  Precedence, lowest first:

1. the recipe file (a plain LLaMA-Factory YAML);
2. ``overrides.<stage>`` from the pipeline or suite file (or ``--set overrides.a_tuning.learning_rate=…``);
3. the keys the run owns (:data:`RUN_OWNED`): model and template from the config's top level, and the
   dataset, output and adapter paths the run manages.  An override of one of these is an error that
   says where to set it instead; it is never silently dropped.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from behaviorlm_plugin.extras.pause import pause_point, pause_requested
from behaviorlm_plugin.hparams.tuning_args import FrozenReuseArguments

RUN_OWNED = {
    "model_name_or_path": "set model_name_or_path at the top level of the config",
    "template": "set template at the top level of the config",
    "dataset_dir": "the run registers and points at its own datasets",
    "dataset": "the run registers and points at its own datasets",
    "eval_dataset": "the run points eval_dataset at the prepared val split",
    "output_dir": "the run decides where each stage's adapter lives",
    "adapter_name_or_path": "B-Tuning continues the run's own A-Tuning adapter",
    "export_dir": "the run exports into <run_dir>/export",
}


class LaunchError(ValueError):
    """A recipe or override that cannot become LLaMA-Factory arguments; the message names the key."""


@dataclass(frozen=True)
class TrainJob:
    """What a run decides for one LoRA stage (the run-owned keys)."""

    stage: str
    model_name_or_path: str
    template: str
    dataset_dir: str
    dataset: str
    output_dir: str
    init_adapter: str | None = None
    eval_dataset: str | None = None
    seed: int | None = None
    """Set by the bench (one per seed); the pipeline leaves the recipe's (or the override's)."""


def read_recipe(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LaunchError(f"{path}: recipe not found")
    raw = yaml.safe_load(path.read_text("utf-8")) or {}
    if not isinstance(raw, dict):
        raise LaunchError(f"{path}: a LLaMA-Factory recipe must be a mapping of arguments")
    return raw


def _check_overrides(stage: str, overrides: dict, owned: set[str]) -> None:
    for key in sorted(set(overrides) & owned):
        why = RUN_OWNED.get(key, "the bench sets one seed per run from the suite's seeds")
        raise LaunchError(f"overrides.{stage}.{key}: this key is set by the run ({why}); remove the override")


def train_args(recipe: str | Path, overrides: dict, job: TrainJob) -> dict:
    """The LLaMA-Factory arguments of one training stage (precedence in the module docstring)."""
    owned = set(RUN_OWNED) | ({"seed"} if job.seed is not None else set())
    _check_overrides(job.stage, overrides, owned)
    cfg = read_recipe(recipe)
    cfg.update(overrides)
    cfg.pop("adapter_name_or_path", None)
    cfg.update(
        model_name_or_path=job.model_name_or_path,
        template=job.template,
        dataset_dir=job.dataset_dir,
        dataset=job.dataset,
        output_dir=job.output_dir,
        overwrite_output_dir=True,
    )
    if job.init_adapter:
        cfg["adapter_name_or_path"] = job.init_adapter
    if "eval_dataset" in cfg:
        if job.eval_dataset is None:
            raise LaunchError(f"{recipe}: has eval_dataset, but this run has no val split to point it at")
        cfg["eval_dataset"] = job.eval_dataset
    if job.seed is not None:
        cfg["seed"] = job.seed
    return cfg


def export_args(
    recipe: str | Path, overrides: dict, *, model: str, template: str, adapter: str, export_dir: str
) -> dict:
    """The LLaMA-Factory arguments of the merge (same precedence as :func:`train_args`)."""
    _check_overrides("export", overrides, set(RUN_OWNED))
    cfg = read_recipe(recipe)
    cfg.update(overrides)
    cfg.update(model_name_or_path=model, template=template, adapter_name_or_path=adapter, export_dir=export_dir)
    return cfg


def run_training(
    cfg: dict,
    yaml_path: Path,
    *,
    pause: str | None = None,
    reuse: FrozenReuseArguments | None = None,
    stock_forward: bool = False,
) -> str:
    """LLaMA-Factory training: in-process on one device, ``llamafactory-cli train`` (torchrun) on several.

    In-process runs compute the LM head at the answer positions only (:mod:`.answer_logits`) unless
    ``stock_forward``, which also leaves ``reuse`` off: LLaMA-Factory's own forward, a check that both speed-ups
    change nothing.
    """
    import torch

    n_gpus = torch.cuda.device_count()
    if n_gpus > 1 or os.environ.get("FORCE_TORCHRUN") == "1":
        bindir = str(Path(sys.executable).parent)  # llamafactory-cli and torchrun of this environment
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        subprocess.run([str(Path(bindir) / "llamafactory-cli"), "train", str(yaml_path)], check=True, env=env)
        return "llamafactory-cli train (torchrun)"
    from llamafactory.train.tuner import run_exp

    from behaviorlm_plugin.tuning.answer_logits import OWN_LOSS_KEYS, answer_logits_callback  # deferred: torch

    # Same loss and gradients with less LM head, unless a LLaMA-Factory loss reads the full logits itself.
    callbacks = [] if stock_forward or any(cfg.get(k) for k in OWN_LOSS_KEYS) else [answer_logits_callback()]
    if reuse is not None and not stock_forward:  # the frozen layers' output from its cache (same loss and gradients)
        from behaviorlm_plugin.tuning.frozen_reuse import frozen_reuse_callback  # deferred: torch

        callbacks.append(frozen_reuse_callback(cfg, reuse.cache_dir, reuse.max_gb))
    if pause is not None and pause_requested(pause):  # tests: a kill after the first optimizer step
        callbacks.append(_pause_callback(pause))
    run_exp(copy.deepcopy(cfg), callbacks=callbacks)
    if cfg.get("plot_loss"):
        import matplotlib.pyplot as plt

        plt.close("all")  # LLaMA-Factory's loss plot leaves its figure open; many in-process runs add up
    return "run_exp (in-process)"


def _pause_callback(name: str):
    """A callback that stops at the kill point ``name`` once the first optimizer step is done (tests only)."""
    from transformers import TrainerCallback

    class _Pause(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                pause_point(name)

    return _Pause()
