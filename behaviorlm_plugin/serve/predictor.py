"""Requests -> ranked behaviors: render, check the context length, score with the exact scorer, rank.

The scorer is :class:`behaviorlm_plugin.model.scoring.CandidateScorer` (the one ``predict`` and
``evaluate`` use) or anything with the same ``score(prompts, candidates)``; tests pass a fake one.
Ranking applies the shared prior-correction rule (:mod:`behaviorlm_plugin.eval.prior_correction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from behaviorlm_plugin.data.serving_manifest import ServingManifest
from behaviorlm_plugin.eval.prior_correction import adjust_log_probs, check_alpha, log_prior
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
        chosen = manifest.prior_correction.alpha if alpha is None else alpha
        self.alpha = check_alpha(chosen or 0.0, source="--prior-correction")
        self.max_length = getattr(getattr(scorer, "config", None), "max_length", None)
        self._answer_len: dict[str, int] = {}

    def prepare(self, req: PredictRequest) -> tuple[PredictRequest, RenderedSample]:
        """Render and check one request (cheap, on the event loop); raises :class:`RequestError`."""
        sample = render_request(req, self.manifest)
        if self.max_length is not None and hasattr(self.encoder, "tokenizer"):
            prompt_len, longest = self._token_lengths(sample)
            if prompt_len + longest > self.max_length:
                raise RequestError(
                    ("history",),
                    f"the prompt is {prompt_len} tokens; with the longest candidate it is {prompt_len + longest}, "
                    f"past the model's context of {self.max_length} tokens; send fewer events",
                )
        return req, sample

    def _token_lengths(self, sample: RenderedSample) -> tuple[int, int]:
        """Prompt tokens and the longest candidate's, as the scorer encodes them. With a LLaMA-Factory template
        that is the scorer's own encoding (answers cached); with a chat template it encodes the prompt once and
        each answer on its own (cached; at most one token off where the tokenizer merges across the boundary),
        where the scorer would encode prompt + answer once per candidate."""
        enc = self.encoder
        if getattr(enc, "lf_template", None) is not None:
            prompt_ids, cand_ids = enc.encode_sample(sample.system, sample.prompt, sample.candidates)
            return len(prompt_ids), max(len(c) for c in cand_ids)
        tok = enc.tokenizer
        prompt_len = len(tok(enc.prompt_text(sample.system, sample.prompt), add_special_tokens=False)["input_ids"])
        for c in sample.candidates:
            if c not in self._answer_len:
                self._answer_len[c] = len(tok(c + tok.eos_token, add_special_tokens=False)["input_ids"])
        return prompt_len, max(self._answer_len[c] for c in sample.candidates)

    def score(self, samples: Sequence[RenderedSample]) -> list[np.ndarray]:
        """Candidate log-probabilities of a batch (one scorer call: the batch is one prompt pass)."""
        return self.scorer.score([(s.system, s.prompt) for s in samples], [s.candidates for s in samples])

    def respond(self, req: PredictRequest, sample: RenderedSample, logprobs: np.ndarray) -> PredictResponse:
        alpha = self.alpha if req.alpha is None else check_alpha(req.alpha, source="alpha")
        probs = _corrected_softmax(np.asarray(logprobs, dtype=np.float64), self._log_prior(sample.candidates), alpha)
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


def _corrected_softmax(logprobs: np.ndarray, log_prior_: np.ndarray, alpha: float) -> np.ndarray:
    """``softmax(log p - alpha * log prior)``, finite for every finite alpha >= 0. Where ``alpha * log prior``
    overflows (alpha near 1e308) the same softmax is taken as ``softmax(alpha * (log p / alpha - log prior))``,
    whose limit ranks by the prior alone; candidates that all score -inf share the mass evenly."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        z = adjust_log_probs(logprobs, log_prior_, alpha)
        if alpha > 0 and (np.isnan(z) | np.isposinf(z)).any():
            scaled = logprobs / alpha - log_prior_
            z = alpha * (scaled - scaled.max())
        probs = np.exp(z - z.max())
    total = probs.sum()
    return probs / total if np.isfinite(total) and total > 0 else np.full(len(probs), 1 / len(probs))
