from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from behaviorlm_plugin.data.prepare import prepare
from behaviorlm_plugin.hparams.data_args import PrepareArguments

# One OpenMP (torch) thread in this process and the ones it starts, unless you set your own: the tiny models gain
# nothing from a second thread, and on a shared 2-core machine under load OpenMP's spinning threads made each
# training step ~10x slower (one thread: 0.1 s, two: 1.2-1.9 s, load average 4).
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # imported before this file (by a plugin): too late for the variable
    sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

_modules_at_last_freeze = 0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """After a wave of imports (torch, transformers, LLaMA-Factory: ~0.5M objects), what is alive goes to the
    permanent generation (``gc.freeze``), which full collections skip. The Trainer ends every training with a
    ``gc.collect()`` (accelerate's ``free_memory``): 0.3-0.4 s over that heap, and the bench tests train dozens of
    times. Before the test's own fixtures are made, so none of its objects is frozen."""
    global _modules_at_last_freeze
    if len(sys.modules) > _modules_at_last_freeze + 500:
        gc.collect()
        gc.freeze()
        _modules_at_last_freeze = len(sys.modules)


def small_prepare_args(dataset_dir: Path, **overrides) -> PrepareArguments:
    kw = dict(
        synthetic=True,
        synthetic_users=60,
        synthetic_days=14,
        dataset_dir=str(dataset_dir),
        name="beh",
        max_train_samples=400,
        max_val_samples=60,
        max_test_samples=80,
        balanced_per_class=5,
        seed=7,
    )
    kw.update(overrides)
    return PrepareArguments(**kw)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> tuple[Path, dict]:
    """A small synthetic dataset prepared once per test session."""
    d = tmp_path_factory.mktemp("prepared")
    stats = prepare(small_prepare_args(d))
    return d, stats


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """One folder for the bench and suite tests' `small_synthetic_prepare` data: prepared by the first test that
    runs a suite, found up to date (same arguments) by the others, so it is built once per session."""
    return tmp_path_factory.mktemp("small-data")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, prepared) -> Path:
    from tiny_model import make_tiny_llama

    d, _ = prepared
    texts = [json.loads(line)["instruction"] for line in (d / "beh" / "train_all.jsonl").open()][:100]
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "model", texts)


def _no_plot(*args, **kwargs) -> None:
    return None


@pytest.fixture(scope="module")
def fake_evaluation_plots():
    """Every scored split draws two PNGs (per-behavior accuracy, confusion matrix): about half the time of the
    bench and suite tests, which score dozens of splits and read none of those images. There they are drawn as
    nothing; tests/eval/test_evaluation.py checks the real ones."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("plot_per_behavior", "plot_confusion"):
            mp.setattr(f"behaviorlm_plugin.eval.evaluate.{name}", _no_plot)
        yield


@pytest.fixture
def free_port() -> int:
    """A local TCP port free now, for a torchrun rendezvous: a fixed port collides with another run of the
    suite on the same machine (or another xdist worker)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
