"""scripts/probe_frozen.py: the val features' batched forward is exact under right padding, and the probe learns a
linear signal when there is one (and gives classes it never saw no probability)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _probe(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports pilot_gate as a sibling, as when run
    spec = importlib.util.spec_from_file_location("probe_frozen", ROOT / "scripts" / "probe_frozen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_batched_features_match_one_prompt_at_a_time(monkeypatch, tiny_model):
    from transformers import LlamaForCausalLM

    probe = _probe(monkeypatch)
    model = LlamaForCausalLM.from_pretrained(tiny_model).eval()
    prompts = [[1, 5, 9, 3], [2, 7], [4, 4, 8, 6, 10, 11, 12]]  # different lengths: the batch is right-padded
    last, mean = probe.forward_features(model, 1, prompts, batch=3)
    for i, p in enumerate(prompts):
        with torch.no_grad():
            h = model.model(input_ids=torch.tensor([p]), output_hidden_states=True).hidden_states[1][0].numpy()
        np.testing.assert_allclose(last[i], h[-1], atol=1e-5)
        np.testing.assert_allclose(mean[i], h.mean(axis=0), atol=1e-5)
    assert not np.allclose(last[0], last[1])  # the positions read differ between prompts


def test_the_probe_reads_a_linear_signal_and_leaves_unseen_classes_at_zero(monkeypatch):
    probe = _probe(monkeypatch)
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16)) * 3
    y = np.repeat(np.arange(4), 60)
    x = centers[y] + rng.normal(size=(len(y), 16))
    fitted, c, cv = probe.fit_probe(x, y)
    assert c in probe.C_GRID and set(cv) == set(probe.C_GRID)
    logp = probe.class_log_probs(fitted, x, n_classes=6)  # classes 4 and 5 never occur in training
    assert (logp.argmax(axis=1) == y).mean() > 0.95
    assert np.isneginf(logp[:, 4:]).all() and np.isfinite(logp[:, :4]).all()
    noise = probe.fit_probe(rng.normal(size=(240, 16)), y)[0]  # no signal: near chance
    assert (noise.predict(rng.normal(size=(400, 16))) == np.repeat(np.arange(4), 100)).mean() < 0.45


def test_the_training_subset_is_the_finished_natural_one_of_this_data(monkeypatch, tmp_path):
    probe = _probe(monkeypatch)
    monkeypatch.setattr(probe, "SUBSETS", tmp_path)

    def subset(name: str, rows: list[str], **spec) -> None:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "data.jsonl").write_text("".join(json.dumps({"id": r}) + "\n" for r in rows))
        full = {"split": "train_all", "n": 2, "seed": 0, "data": "fp", **spec}
        if name != "a.partial":  # a step still running has no step.json
            (folder / "step.json").write_text(json.dumps({"kind": "subset", "spec": full}))

    subset("a.partial", ["running"])
    subset("b", ["tail-only"], categories=["tail"])
    subset("c", ["other-data"], data="other")
    subset("d", ["x", "y"])
    assert [r["id"] for r in probe.subset_rows(2, "fp")] == ["x", "y"]
    with pytest.raises(SystemExit, match="n = 3"):
        probe.subset_rows(3, "fp")


def test_the_controls_read_the_facts_of_each_sample_by_id(monkeypatch, tmp_path):
    from behaviorlm_plugin.data.dataset import PreparedDataset

    probe = _probe(monkeypatch)
    rng = np.random.default_rng(0)
    base = tmp_path / "beh"
    base.mkdir()
    facts = {}
    for split, n in (("train_all", 240), (probe.SPLIT, 120)):
        ids = [f"{split}-{i:04d}" for i in range(n)]
        (base / f"{split}.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
        place, hour = rng.integers(0, 4, n), rng.integers(0, 24, n)
        np.savez(base / f"{split}.features.npz", next_place=place, next_hour=hour, label=np.zeros(n, dtype=int))
        facts[split] = (ids, place)
    centers = rng.normal(size=(4, 16)) * 3
    (tr_ids, tr_place), (va_ids, va_place) = facts["train_all"], facts[probe.SPLIT]
    order = rng.permutation(len(tr_ids))  # the samples come in the subset's order, not the split's
    x = centers[tr_place[order]] + rng.normal(size=(len(order), 16))
    xv = centers[va_place] + rng.normal(size=(len(va_ids), 16))
    out = probe.controls(PreparedDataset(tmp_path, "beh"), [tr_ids[i] for i in order], va_ids, x, xv)
    assert out["next_place"]["accuracy"] > 0.9 and out["next_place"]["classes"] == 4
    assert out["next_hour"]["accuracy"] < 0.25  # the features say nothing of the hour
    assert 0 < out["next_hour"]["majority"] < 0.25
