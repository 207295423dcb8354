"""Exact candidate scoring: total log-probability of each behavior label given the prompt.

For every sample the prompt is encoded **once** (a left-padded batch of ``batch_size`` prompts, with an
attention mask and explicit position ids so padding does not change the result) and its KV cache is then reused
for all candidate continuations of that sample: the candidates form a token trie (shared prefixes such as
"Watching" are fed once) that runs as one row against the prompt cache, with a 4D attention mask so that each
trie node sees its own prompt and its ancestors only. Cost: one prompt pass plus one pass over the trie nodes.

The score of a candidate is ``sum(log p(tok))`` over the candidate's tokens **plus the end token** (``eos``, i.e.
``<|im_end|>`` for ChatML templates), so a label that is a prefix of another ("Watching video" vs "Watching video
clip") is scored correctly.

Tokenization: the prompt text comes from the tokenizer's own chat template (``add_generation_prompt=True``) and is
tokenized with ``add_special_tokens=False`` (the template already contains any BOS). The candidate tokens are those
of ``tokenizer(prompt_text + candidate + eos)`` after the prompt tokens. If the tokenizer merges tokens across the
prompt/candidate boundary (the joint encoding does not start with the prompt tokens), the candidate is instead
encoded on its own (``tokenizer(candidate + eos)``), which is how LLaMA-Factory encodes the answer during training.

Limitation: the custom 4D mask assumes full attention; models with sliding-window attention are exact only while
prompt + candidate fit in the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from behaviorlm_plugin.model.generation import GenerationResult, generate_labels, parse_generation
from behaviorlm_plugin.model.paths import check_adapter_path, check_model_path
from behaviorlm_plugin.model.trie import build_trie, continuation_index, first_token_index, left_pad

__all__ = ["CandidateScorer", "GenerationResult", "Prediction", "ScoringConfig", "parse_generation"]


@dataclass
class ScoringConfig:
    batch_size: int = field(
        default=4, metadata={"help": "Samples (prompts) per prompt pass; a sample's candidates are always one batch."}
    )
    max_length: int = field(
        default=2048, metadata={"help": "Max prompt + longest candidate tokens; longer samples raise ValueError."}
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA if available), cpu, cuda or cuda:N."})
    dtype: str = field(
        default="auto", metadata={"help": "Model dtype in from_pretrained: auto, float32, bfloat16, float16."}
    )
    merge_adapter: str = field(
        default="auto",
        metadata={"help": "Fold a LoRA adapter into the weights: auto (float32 only, ~1e-4 change), always, never."},
    )
    show_progress: bool = field(default=True, metadata={"help": "A tqdm bar over samples."})
    template: str | None = field(
        default=None,
        metadata={
            "help": "LLaMA-Factory template used in training (smollm2, llama3, qwen…): prompts and answers are "
            "encoded exactly as its SFT does. None: the tokenizer's own chat template."
        },
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.merge_adapter not in ("auto", "always", "never"):
            raise ValueError(f"merge_adapter must be auto, always or never, got {self.merge_adapter!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")

    @property
    def torch_dtype(self):
        """``dtype`` as ``from_pretrained`` takes it."""
        return self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)

    def fold(self, peft_model):
        """``peft_model`` with its adapter merged into the weights where ``merge_adapter`` says so."""
        merge = self.merge_adapter
        if merge == "always" or (merge == "auto" and next(peft_model.parameters()).dtype == torch.float32):
            return peft_model.merge_and_unload()
        return peft_model


@dataclass
class Prediction:
    id: Any
    label: str
    """Top-1 candidate."""
    top_k: list[tuple[str, float]]
    """The ``k`` most probable candidates with their probability (softmax over the candidate set)."""
    probs: np.ndarray
    """Probability of every candidate, in the sample's candidate order (sums to 1)."""
    logprobs: np.ndarray
    """Raw total log-probability of every candidate (candidate tokens + eos)."""
    true_label: str | None = None
    true_prob: float | None = None
    true_rank: int | None = None
    """1-based rank of the true label (1 + number of candidates with a strictly higher probability)."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class CandidateScorer:
    """Scores every candidate label of a sample with one prompt encoding and one batched candidate pass."""

    def __init__(self, model, tokenizer, config: ScoringConfig | None = None) -> None:
        self.config = config or ScoringConfig()
        self.tokenizer = tokenizer
        if self.config.device == "auto":
            self.device = next(model.parameters()).device
        else:
            self.device = resolve_device(self.config.device)
            model = model.to(self.device)
        self.model = model.eval()
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; it is needed to end every candidate")
        self.eos_token = tokenizer.eos_token
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.fallback_count = 0
        """Number of (sample, candidate) pairs that needed the separate-encoding fallback."""
        self.lf_template = None
        self._answer_cache: dict[str, list[int]] = {}
        if self.config.template is not None:
            from llamafactory.data import get_template_and_fix_tokenizer
            from llamafactory.hparams import DataArguments

            self.lf_template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=self.config.template))

    @classmethod
    def from_pretrained(cls, model_path, adapter_path=None, **cfg) -> CandidateScorer:
        """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` from ``model_path`` (a base or merged model) and,
        when ``adapter_path`` is given, wrap it with ``peft.PeftModel.from_pretrained``. ``cfg`` are
        :class:`ScoringConfig` fields."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_model_path(str(model_path))  # both before loading anything: no minutes lost on a typo
        check_adapter_path(None if adapter_path is None else str(adapter_path))
        config = ScoringConfig(**cfg)
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=config.torch_dtype)
        model.to(resolve_device(config.device))
        if adapter_path is not None:
            from peft import PeftModel

            model = config.fold(PeftModel.from_pretrained(model, str(adapter_path)))
        return cls(model, tokenizer, config)

    # ------------------------------------------------------------------ tokenization
    def prompt_text(self, system: str | None, user: str) -> str:
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode_lf(self, system: str | None, user: str, candidates: Sequence[str]):
        """LLaMA-Factory's own encoding: each message is encoded separately, so answers never merge with the
        prompt and a label's ids (with the template's end tokens) do not depend on the prompt."""
        tok, tpl = self.tokenizer, self.lf_template
        prompt_ids, _ = tpl.encode_oneturn(
            tok, [{"role": "user", "content": user}, {"role": "assistant", "content": ""}], system or None
        )
        cand_ids = []
        for cand in candidates:
            if cand not in self._answer_cache:
                _, ans = tpl.encode_oneturn(
                    tok, [{"role": "user", "content": "x"}, {"role": "assistant", "content": cand}], system or None
                )
                ans = list(ans)
                # Score up to the end-of-turn token; what follows is template formatting ("\\n").
                if self.tokenizer.eos_token_id in ans:
                    ans = ans[: ans.index(self.tokenizer.eos_token_id) + 1]
                self._answer_cache[cand] = ans
            cand_ids.append(self._answer_cache[cand])
        return list(prompt_ids), cand_ids

    def encode_sample(self, system: str | None, user: str, candidates: Sequence[str]):
        """Return ``(prompt_ids, [candidate_ids...])``; every candidate's ids end with the eos token."""
        if self.lf_template is not None:
            return self._encode_lf(system, user, candidates)
        text = self.prompt_text(system, user)
        prompt_ids = self._encode(text)
        n = len(prompt_ids)
        cand_ids = []
        for cand in candidates:
            full = self._encode(text + cand + self.eos_token)
            if full[:n] == prompt_ids and len(full) > n:
                cand_ids.append(full[n:])
            else:  # the tokenizer merged across the boundary: encode the answer on its own
                self.fallback_count += 1
                cand_ids.append(self._encode(cand + self.eos_token))
        return prompt_ids, cand_ids

    # ------------------------------------------------------------------ scoring
    @property
    def variants(self) -> tuple[str, ...]:
        """The models scored at once: one, or a :class:`~.twin.TwinModel`'s tuned and base."""
        return getattr(self.model, "variants", ("model",))

    def score(
        self,
        prompts: Sequence[tuple[str | None, str]],
        candidates: Sequence[Sequence[str]],
        ids: Sequence | None = None,
    ) -> list[np.ndarray]:
        """Total log-probability (float64 array, candidate order) of each sample's candidates + eos."""
        return self.score_variants(prompts, candidates, ids)[0]

    def score_variants(self, prompts, candidates, ids=None) -> list[list[np.ndarray]]:
        """:meth:`score` for each of :attr:`variants`, in that order."""
        if len(prompts) != len(candidates):
            raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
        ids = list(range(len(prompts))) if ids is None else list(ids)
        if len(ids) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(ids)} ids")

        encoded = []
        for (system, user), cands, sid in zip(prompts, candidates, ids, strict=True):
            if len(cands) == 0:
                raise ValueError(f"sample {sid!r} has no candidates")
            p, cs = self.encode_sample(system, user, cands)
            total = len(p) + max(len(c) for c in cs)
            if total > self.config.max_length:
                raise ValueError(
                    f"sample {sid!r}: prompt ({len(p)} tokens) + longest candidate ({max(len(c) for c in cs)} "
                    f"tokens) = {total} exceeds max_length={self.config.max_length}"
                )
            encoded.append((p, cs))

        # Batch prompts of similar length together (less padding); results go back in input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]), reverse=True)
        results: list[list] = [[None] * len(encoded) for _ in self.variants]
        bar = None
        if self.config.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(encoded), desc="scoring", unit="sample")
        try:
            bs = self.config.batch_size
            with torch.inference_mode():
                for start in range(0, len(order), bs):
                    chunk = order[start : start + bs]
                    for v, scores in enumerate(self._score_batch([encoded[i] for i in chunk])):
                        for i, s in zip(chunk, scores, strict=True):
                            results[v][i] = s
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return results

    def _score_batch(self, batch: list[tuple[list[int], list[list[int]]]]) -> list[list[np.ndarray]]:
        """Two forward passes for the whole batch.

        1. The left-padded prompts, with position ids that skip padding; keeps the KV cache.
        2. Every sample's candidates as a token *trie* (shared prefixes once), one row per sample,
           against that cache, with a 4D mask letting each trie node see its own prompt and its
           ancestors only (tree attention). No prompt is re-run and no cache is copied.
        """
        dev = self.device
        lens = [len(p) for p, _ in batch]
        width = max(lens)
        input_ids, attn = left_pad([p for p, _ in batch], self.pad_id)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids.to(dev),
            attention_mask=attn.to(dev),
            position_ids=pos.to(dev),
            use_cache=True,
            logits_to_keep=1,
        )
        first_logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # scores each 1st token (on device)
        n_var = len(self.variants)  # a TwinModel stacks its variants along the batch
        assert first_logp.shape[0] == n_var * len(batch), "the model's rows do not match its variants"
        cache = out.past_key_values
        del out

        tries = [build_trie(cands) for _, cands in batch]
        n_nodes = max(len(t.tokens) for t in tries)
        # Every candidate's first-token score: one gather on the device, whatever the batch.
        rows, firsts, counts = first_token_index(batch)
        rows, firsts = _stacked(rows, len(batch), n_var).to(dev), firsts.repeat(n_var).to(dev)
        totals = first_logp[rows, firsts].double().view(n_var, -1)
        if n_nodes > 0:
            totals += self._trie_pass(batch, tries, lens, width, n_nodes, cache).view(n_var, -1)
        del cache
        return [_split(t, counts) for t in totals.cpu().numpy()]

    def _trie_pass(self, batch, tries, lens: list[int], width: int, n_nodes: int, cache) -> torch.Tensor:
        """Scores of every candidate's tokens after the first, from one forward over the batch's tries."""
        dev = self.device
        dtype = next(self.model.parameters()).dtype
        neg = torch.finfo(dtype).min
        b = len(batch)
        node_ids = torch.full((b, n_nodes), self.pad_id, dtype=torch.long)
        node_pos = torch.zeros((b, n_nodes), dtype=torch.long)
        mask = torch.full((b, 1, n_nodes, width + n_nodes), neg, dtype=dtype)
        for r, trie in enumerate(tries):
            k = len(trie.tokens)
            mask[r, 0, :, width - lens[r] : width] = 0  # the row's real prompt tokens
            if k:
                node_ids[r, :k] = torch.tensor(trie.tokens, dtype=torch.long)
                node_pos[r, :k] = lens[r] + torch.tensor(trie.depth, dtype=torch.long)
                mask[r, 0, :k, width : width + k] = torch.where(torch.from_numpy(trie.ancestors), 0.0, neg).to(dtype)
            mask[r, 0, range(k, n_nodes), range(width + k, width + n_nodes)] = 0  # padding rows see themselves
        logits = self.model(
            input_ids=node_ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=node_pos.to(dev),
            past_key_values=cache,
            use_cache=False,
        ).logits
        # log p(token | node) = logit - logsumexp(node): one logsumexp per node (candidates sharing a prefix share
        # its node), then a gather of the few (node, token) pairs needed, on the device, with no [pairs, vocab] copy.
        row, node, tok, cand = continuation_index(batch, tries)
        n_var, n_cands = len(self.variants), sum(len(c) for _, c in batch)
        row, node, tok = _stacked(row, b, n_var).to(dev), node.repeat(n_var).to(dev), tok.repeat(n_var).to(dev)
        lse = torch.logsumexp(logits.float(), dim=-1)
        picked = logits[row, node, tok].float() - lse[row, node]
        out = torch.zeros(n_var * n_cands, dtype=torch.float64, device=dev)
        return out.index_add_(0, _stacked(cand, n_cands, n_var).to(dev), picked.double())

    # ------------------------------------------------------------------ generation (for comparison)
    def generate(self, prompts, candidates, max_new_tokens: int = 16) -> list[GenerationResult]:
        """Greedy generation parsed against the candidate set (see :func:`.generation.generate_labels`)."""

        if len(self.variants) > 1:
            raise ValueError(f"generation runs one model; this scorer scores {self.variants} at once")
        return generate_labels(self, prompts, candidates, max_new_tokens)

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        prompts: Sequence[tuple[str | None, str]],
        candidates: Sequence[Sequence[str]],
        labels: Sequence[str | None] | None = None,
        ids: Sequence | None = None,
        k: int = 3,
    ) -> list[Prediction]:
        """Top-1 label, top-``k`` (label, prob) and — when ``labels`` are given — the true label's prob and rank.
        Probabilities are a softmax of the candidate log-probabilities over the sample's candidate set."""
        return self.predict_variants(prompts, candidates, labels, ids, k)[0]

    def predict_variants(self, prompts, candidates, labels=None, ids=None, k: int = 3) -> list[list[Prediction]]:
        """:meth:`predict` for each of :attr:`variants`, in that order."""
        if labels is not None and len(labels) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(labels)} labels")
        ids = list(range(len(prompts))) if ids is None else list(ids)
        labels = [None] * len(prompts) if labels is None else labels
        return [
            [_prediction(i, lp, c, t, k) for i, lp, c, t in zip(ids, lps, candidates, labels, strict=True)]
            for lps in self.score_variants(prompts, candidates, ids=ids)
        ]


def _prediction(sid, lp: np.ndarray, cands: Sequence[str], true: str | None, k: int) -> Prediction:
    probs = np.exp(lp - lp.max())
    probs = probs / probs.sum()
    ranked = np.argsort(-probs, kind="stable")
    pred = Prediction(
        id=sid,
        label=cands[int(ranked[0])],
        top_k=[(cands[int(j)], float(probs[j])) for j in ranked[:k]],
        probs=probs,
        logprobs=lp,
    )
    if true is not None:
        pred.true_label = true
        if true in cands:
            t = list(cands).index(true)
            pred.true_prob = float(probs[t])
            pred.true_rank = int((probs > probs[t]).sum()) + 1
        else:
            pred.true_prob, pred.true_rank = 0.0, None
    return pred


def _stacked(index: torch.Tensor, size: int, n_var: int) -> torch.Tensor:
    """``index`` repeated for each of ``n_var`` variant blocks stacked along the batch (block ``v`` at ``v * size``)."""
    return torch.cat([index + v * size for v in range(n_var)])


def _split(flat: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    return [a.astype(np.float64) for a in np.split(flat, np.cumsum(counts)[:-1])]
