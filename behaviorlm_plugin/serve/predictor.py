"""Requests -> ranked behaviors: render, check the context length, score with the exact scorer, rank.

The scorer is :class:`behaviorlm_plugin.model.scoring.CandidateScorer` (the one ``predict`` and
``evaluate`` use) or anything with the same ``score(prompts, candidates)``; tests pass a fake one.
Ranking applies the shared prior-correction rule (:mod:`behaviorlm_plugin.eval.prior_correction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from behaviorlm_plugin.eval.prior_correction import adjust_log_probs, check_alpha, log_prior
from behaviorlm_plugin.serve.manifest import ServingManifest
from behaviorlm_plugin.serve.prompting import RenderedSample, RequestError, render_request
from behaviorlm_plugin.serve.schemas import PredictRequest, PredictResponse, RankedBehavior


class Scorer(Protocol):
    def score(self, prompts: Sequence[tuple[str | None, str]], candidates: Sequence[Sequence[str]]) -> list: ...


class Predictor:
    """Holds one model's scorer and manifest; :meth:`prepare` runs per request, :meth:`score` per batch."""

    def __init__(
        self,
        scorer: Scorer,
        manifest: ServingManifest,
        *,
        model_id: str,
        alpha: float | None = None,
        encoder=None,
    ) -> None:
        """``encoder``: an object with ``encode_sample`` for the context-length check (default: the scorer)."""
        self.scorer = scorer
        self.encoder = encoder if encoder is not None else scorer
        self.manifest = manifest
        self.model_id = model_id
        chosen = manifest.prior_correction if alpha is None else alpha
        self.alpha = check_alpha(chosen or 0.0, source="--prior-correction")
        self.max_length = getattr(getattr(scorer, "config", None), "max_length", None)

    def prepare(self, req: PredictRequest) -> tuple[PredictRequest, RenderedSample]:
        """Render and check one request (cheap, on the event loop); raises :class:`RequestError`."""
        sample = render_request(req, self.manifest)
        encode = getattr(self.encoder, "encode_sample", None)
        if encode is not None and self.max_length is not None:
            prompt_ids, cand_ids = encode(sample.system, sample.prompt, sample.candidates)
            total = len(prompt_ids) + max(len(c) for c in cand_ids)
            if total > self.max_length:
                raise RequestError(
                    ("history",),
                    f"the prompt is {len(prompt_ids)} tokens; with the longest candidate it is {total}, past the "
                    f"model's context of {self.max_length} tokens; send fewer events",
                )
        return req, sample

    def score(self, samples: Sequence[RenderedSample]) -> list[np.ndarray]:
        """Candidate log-probabilities of a batch (one scorer call: the batch is one prompt pass)."""
        return self.scorer.score([(s.system, s.prompt) for s in samples], [s.candidates for s in samples])

    def respond(self, req: PredictRequest, sample: RenderedSample, logprobs: np.ndarray) -> PredictResponse:
        alpha = self.alpha if req.alpha is None else check_alpha(req.alpha, source="alpha")
        z = adjust_log_probs(np.asarray(logprobs, dtype=np.float64), self._log_prior(sample.candidates), alpha)
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")[: req.top_k]
        m = self.manifest
        ranked = [
            RankedBehavior(
                behavior=sample.candidates[j],
                prob=float(probs[j]),
                anchor_tail=m.anchor_tail[sample.candidates[j]],
                head_medium_tail=m.head_medium_tail[sample.candidates[j]],
            )
            for j in order
        ]
        return PredictResponse(
            id=req.id,
            prediction=ranked[0].behavior,
            ranked=ranked,
            model=self.model_id,
            alpha=alpha,
            prompt_format=sample.prompt_format,
            history_events=sample.history_events,
            short_history=sample.history_events < m.history_len,
            training_history_len=m.history_len,
        )

    def _log_prior(self, candidates: list[str]) -> np.ndarray:
        return log_prior(self.manifest.train_frequency, candidates)
