"""Settings shared by the tests that run the pipeline or the bench on the tiny model."""

from pathlib import Path

# LLaMA-Factory overrides: a couple of optimizer steps instead of the recipes' schedule.
FAST_TRAIN = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "cutoff_len": 1024,
    "warmup_ratio": 0.0,
}


def small_synthetic_prepare(dataset_dir: Path, **overrides) -> dict:
    """`prepare` block: 60 simulated users over two weeks, capped splits (seconds to build)."""
    return {
        "synthetic": True,
        "synthetic_users": 60,
        "synthetic_days": 14,
        "dataset_dir": str(dataset_dir),
        "name": "beh",
        "max_train_samples": 300,
        "max_val_samples": 40,
        "max_test_samples": 40,
        "balanced_per_class": 3,
        "seed": 7,
        **overrides,
    }
