"""A fake scorer (deterministic scores, a gate to hold batches, a record of batch sizes) and a manifest."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import numpy as np

from behaviorlm_plugin.data.serving_manifest import ServingManifest
from behaviorlm_plugin.hparams.serve_args import ServeArguments
from behaviorlm_plugin.serve.app import create_app
from behaviorlm_plugin.serve.predictor import Predictor

BEHAVIORS = ["Cooking", "Gaming", "Sleeping", "Working", "Yoga"]


def manifest(**kw) -> ServingManifest:
    base = dict(
        behaviors=BEHAVIORS,
        anchor_tail={b: "tail" if b == "Yoga" else "anchor" for b in BEHAVIORS},
        head_medium_tail={b: "tail" if b == "Yoga" else "head" for b in BEHAVIORS},
        train_frequency={"Cooking": 0.2, "Gaming": 0.2, "Sleeping": 0.4, "Working": 0.195, "Yoga": 0.005},
        history_len=4,
        prompt_formats=["instruct1", "instruct2"],
        template=None,
    )
    base.update(kw)
    return ServingManifest(**base)


class FakeScorer:
    """Log-probs from a hash of (prompt, candidate); ``gate`` (when set) holds every batch until released."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.batch_sizes: list[int] = []
        self.started = threading.Event()

    def score(self, prompts, candidates) -> list[np.ndarray]:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never released the gate"
        self.batch_sizes.append(len(prompts))
        out = []
        for (system, user), cands in zip(prompts, candidates, strict=True):
            digest = [hashlib.sha256(f"{system}|{user}|{c}".encode()).digest()[0] for c in cands]
            out.append(-np.array(digest, dtype=np.float64) / 32.0)
        return out


def make_app(scorer=None, *, api_key=None, alpha=None, m=None, **limits):
    args = ServeArguments(model="fake", **limits)
    predictor = Predictor(scorer or FakeScorer(), m or manifest(), model_id="fake", alpha=alpha)
    return create_app(predictor, args, api_key=api_key)


def event(behavior="Cooking", day="Mon", hour=8, place="home") -> dict:
    return {"behavior": behavior, "day": day, "hour": hour, "place": place}


def request(n=4, **kw) -> dict:
    body = {
        "history": [event(BEHAVIORS[i % len(BEHAVIORS)], hour=(8 + i) % 24) for i in range(n)],
        "next": {"day": "Tue", "hour": 9, "place": "office"},
    }
    body.update(kw)
    return body


async def wait_for(predicate, what: str) -> None:
    """Poll ``predicate`` on the event loop (at most 10 s), failing with ``what`` if it never holds."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")
