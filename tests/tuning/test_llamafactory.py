"""The registered datasets load in LLaMA-Factory and train a step (tiny random Llama, CPU)."""

import os
import subprocess
import sys

from behaviorlm_plugin.data.prepare import ALL_SPLITS


def test_one_training_step_on_every_registered_entry(prepared, tiny_model, tmp_path):
    from llamafactory.train.tuner import run_exp

    d, _ = prepared
    out = tmp_path / "out"
    run_exp(
        {
            "model_name_or_path": str(tiny_model),
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "lora_target": "all",
            "dataset": ",".join(f"beh_{s}" for s in ALL_SPLITS),
            "dataset_dir": str(d),
            "template": "smollm2",
            "cutoff_len": 1024,
            "max_samples": 4,
            "output_dir": str(out),
            "overwrite_output_dir": True,
            "per_device_train_batch_size": 2,
            "max_steps": 1,
            "report_to": "none",
            "use_cpu": True,
            "save_strategy": "no",
            "dataloader_num_workers": 0,
            "overwrite_cache": True,
        }
    )
    assert (out / "adapter_model.safetensors").exists()


def test_llamafactory_cli_train_reads_the_generated_dataset_info(prepared, tiny_model, tmp_path):
    d, _ = prepared
    yaml = tmp_path / "train.yaml"
    yaml.write_text(
        f"model_name_or_path: {tiny_model}\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_target: all\n"
        f"dataset: beh_atuning_mix\ndataset_dir: {d}\ntemplate: smollm2\ncutoff_len: 1024\nmax_samples: 4\n"
        f"output_dir: {tmp_path / 'cli_out'}\nper_device_train_batch_size: 2\nmax_steps: 1\nreport_to: none\n"
        "use_cpu: true\nsave_strategy: 'no'\noverwrite_cache: true\n"
    )
    cli = os.path.join(os.path.dirname(sys.executable), "llamafactory-cli")
    env = dict(os.environ, DISABLE_VERSION_CHECK="1")
    proc = subprocess.run([cli, "train", str(yaml)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "cli_out" / "adapter_model.safetensors").exists()
