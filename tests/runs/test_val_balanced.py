"""val_balanced: a class-balanced split of val users, drawn on its own stream; choices made on it (alpha, the
learning rate) never read a test split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from behaviorlm_plugin.eval.rows import row_from_probs
from behaviorlm_plugin.extras.fileio import atomic_write_jsonl, read_jsonl
from behaviorlm_plugin.hparams.prior_correction_args import PriorCorrectionArguments
from behaviorlm_plugin.runs.bench.cache import Step, StepCache
from behaviorlm_plugin.runs.bench.context import build_context
from behaviorlm_plugin.runs.bench.lr_search import _pick, _score
from behaviorlm_plugin.runs.bench.model_free import prior_correction_step
from behaviorlm_plugin.runs.bench.runner import load_suite

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "yaml_recipes" / "smollm2-135m-cpu"


def test_val_balanced_is_class_balanced_and_from_val_users(prepared):
    d, stats = prepared
    val = read_jsonl(d / "beh" / "val.meta.jsonl")
    bal = read_jsonl(d / "beh" / "val_balanced.meta.jsonl")
    test_users = {m["user_id"] for m in read_jsonl(d / "beh" / "test.meta.jsonl")}
    counts = Counter(m["label"] for m in bal)
    assert bal and max(counts.values()) <= 5  # balanced_per_class of the fixture
    assert {m["label"] for m in val} <= set(counts)  # every behavior val has, and the rare ones it missed
    assert not {m["user_id"] for m in bal} & test_users
    assert stats["splits"]["samples_written"]["val_balanced"] == len(bal)
    assert all(m["id"].startswith("beh-val_balanced-") for m in bal)


def _context(tmp: Path, data_dir: Path):
    suite = {
        "name": "s",
        "model_name_or_path": "some/model",
        "template": "smollm2",
        "recipes": {k: str(RECIPES / f"{k}.yaml") for k in ("a_tuning", "b_tuning")},
        "prepare": {"synthetic": True, "dataset_dir": str(data_dir), "name": "beh"},
        "evaluation": {"splits": ["val_balanced", "test_balanced"]},
        "cache_dir": str(tmp / "cache"),
        "variants": [{"name": "BehaviorLM", "kind": "behaviorlm", "group": "ours"}],
        "sasrec": {"enabled": False},
    }
    (tmp / "suite.yaml").write_text(yaml.safe_dump(suite))
    return build_context(load_suite(tmp / "suite.yaml"), StepCache(tmp / "cache", lambda s: None), lambda s: None)


def _scored(ctx, folder: Path, seed: int, scramble_test: bool) -> Step:
    """A fake eval step: prior-shaped scores (the rule can move them), test_balanced scrambled on demand."""
    freq = ctx.data.stats.frequency
    for split, ids in ctx.eval_ids.items():
        rng = np.random.default_rng([seed if (split == "test_balanced" and scramble_test) else 0, len(split)])
        metas = {m["id"]: m for m in read_jsonl(ctx.data.meta_path(split))}
        rows = []
        for i in ids:
            m = metas[i]
            p = np.array([freq[c] + 1e-3 for c in m["candidates"]]) * np.exp(rng.normal(0, 1.0, len(m["candidates"])))
            rows.append(row_from_probs(m, m["candidates"], p, method="score", fmt=None))
        atomic_write_jsonl(folder / split / "preds.jsonl", rows)
    return Step("eval", f"fake{seed}{scramble_test}", folder, {}, 0.0, False)


def test_alpha_chosen_on_val_balanced_ignores_test_balanced(tmp_path, prepared):
    d, _ = prepared
    ctx = _context(tmp_path, d)
    rule = PriorCorrectionArguments(alpha="auto", choose_on="val_balanced", alpha_grid=[0.0, 0.5, 1.0, 1.5])
    chosen = []
    for seed in (1, 2, 3):  # the test scores change from one to the next; val_balanced's do not
        step = prior_correction_step(ctx, _scored(ctx, tmp_path / f"s{seed}", seed, True), rule)
        chosen.append((step.info["alpha"], step.info["alpha_choice"]["val_counts"]))
    assert chosen[0] == chosen[1] == chosen[2]
    assert max(chosen[0][1].values()) <= 5  # the counts behind the choice are val_balanced's


def test_a_learning_rate_read_on_val_balanced_ignores_test_balanced():
    def trial(lr, val_avg, test_avg):
        m = {"val_balanced": {"weighted_recall": 0.5, "acc_avg": val_avg}, "test_balanced": {"acc_avg": test_avg}}
        return {"lr": lr, **_score(Step("eval", "k", Path("."), {"metrics": m}, 0.0, False), "val_balanced")}

    a = [trial(1e-4, 0.10, 0.90), trial(3e-4, 0.30, 0.10), trial(1e-3, 0.20, 0.50)]
    b = [trial(1e-4, 0.10, 0.00), trial(3e-4, 0.30, 0.99), trial(1e-3, 0.20, 0.00)]
    assert _pick(a, "acc_avg") == _pick(b, "acc_avg") == 3e-4
