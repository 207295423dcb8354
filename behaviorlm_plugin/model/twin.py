"""A LoRA-tuned model and its base model in one forward pass, sharing the layers the adapter leaves alone.

An evaluation puts the tuned model beside the zero-shot base model on the same samples. When the adapter
only touches decoder layers ``split`` and above (the CPU recipe tunes the top 4 of 30), everything below
``split`` -- embeddings, layers, their KV cache -- is the same in both models. :class:`TwinModel` runs it
once: the base model's own forward computes all layers (that is the zero-shot result) while pre-hooks on
layers ``split``.. keep the hidden states entering layer ``split`` and the exact arguments each of those layers
gets (its mask, which differs for sliding-window layers, rotary embeddings, cache positions); the tuned copies
of layers ``split``.. then run from those, each with its own base layer's arguments and a cache of their own,
followed by the shared final norm and LM head. The cost is ``L + (L - split)`` layers instead
of ``2 L``.

The output stacks the two models along the batch: rows ``[0, B)`` are the tuned model, ``[B, 2B)`` the
base (:data:`VARIANTS`). :class:`~behaviorlm_plugin.model.scoring.CandidateScorer` reads them as two
variants. :func:`load_twin` returns ``None`` when nothing would be shared (an adapter on layer 0, the
embeddings or the LM head, ``modules_to_save``, an architecture without ``model.layers``); callers then score
the two models separately, which also keeps one model's weights in memory instead of two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from behaviorlm_plugin.model.paths import check_adapter_path, check_model_path
from behaviorlm_plugin.model.scoring import CandidateScorer, ScoringConfig, resolve_device

VARIANTS = ("tuned", "base")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass
class TwinCache:
    """The base model's cache and the tuned top layers' cache (only layers ``split``.. are filled)."""

    base: Any
    tuned: Any


@dataclass
class TwinOutput:
    logits: torch.Tensor
    past_key_values: TwinCache


class TwinModel(torch.nn.Module):
    """``base`` with its layers ``split``.. replaced by ``tuned_layers`` in a second branch; see the module doc."""

    variants = VARIANTS

    def __init__(self, base, tuned_layers: torch.nn.ModuleList, split: int) -> None:
        super().__init__()
        layers = base.model.layers
        if len(tuned_layers) != len(layers) - split:
            raise ValueError(f"{len(tuned_layers)} tuned layers do not replace layers {split}..{len(layers) - 1}")
        self.base, self.tuned_layers, self.split = base, tuned_layers, split
        self.config = base.config

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False, logits_to_keep=0
    ) -> TwinOutput:
        from transformers import DynamicCache

        cache = past_key_values or TwinCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        # What each base layer from `split` up is called with: a model may give layers different masks (sliding
        # windows) or rotary embeddings, so tuned layer i gets exactly base layer i's keyword arguments.
        seen: list = [None] * len(self.tuned_layers)

        def keeper(i: int):
            def keep(_module, args, kwargs):
                seen[i] = (args, dict(kwargs))

            return keep

        layers = self.base.model.layers
        hooks = [
            layers[self.split + i].register_forward_pre_hook(keeper(i), with_kwargs=True)
            for i in range(len(self.tuned_layers))
        ]
        try:
            out = self.base(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache.base,
                use_cache=True,
                logits_to_keep=logits_to_keep,
            )
        finally:
            for hook in hooks:
                hook.remove()
        hidden = None
        for layer, (args, kwargs) in zip(self.tuned_layers, seen, strict=True):
            if hidden is None:  # the input of layer `split`: the same in both models
                hidden = args[0] if args else kwargs["hidden_states"]
            kwargs.pop("hidden_states", None)
            hidden = layer(hidden, *args[1:], **{**kwargs, "past_key_values": cache.tuned})
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        hidden = self.base.model.norm(hidden)
        cut = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        tuned = self.base.lm_head(hidden[:, cut, :])
        return TwinOutput(torch.cat([tuned, out.logits]), cache)


def adapter_split(adapter_path: str) -> int | None:
    """The lowest decoder layer a saved LoRA adapter changes, read from its files without loading a model.

    ``None`` where nothing would be shared: an adapter on anything outside the decoder layers (embeddings, LM
    head, ``modules_to_save``), on layer 0 already, or not in safetensors."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    folder = Path(adapter_path)
    weights = folder / "adapter_model.safetensors"
    if not weights.exists():
        return None
    config = json.loads((folder / "adapter_config.json").read_text())
    if config.get("modules_to_save"):
        return None
    with safe_open(str(weights), framework="pt") as f:
        found = [_LAYER.search(k) for k in f.keys()]  # noqa: SIM118 (safe_open is not iterable)
    if not found or any(m is None for m in found):
        return None
    split = min(int(m.group(1)) for m in found)
    return split or None


def load_twin(model_path: str, adapter_path: str, config: ScoringConfig) -> TwinModel | None:
    """The base model at ``model_path`` and, in a second branch, its layers tuned by ``adapter_path``; ``None``
    where they share nothing (:func:`adapter_split`) or the model has no ``model.layers``.

    ``config`` gives the dtype, the device and whether the adapter is folded into the weights. A second copy of
    the model is loaded to apply the adapter; only its tuned layers are kept.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    split = adapter_split(adapter_path)
    if split is None:
        return None
    dtype, device = config.torch_dtype, resolve_device(config.device)
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
    inner = getattr(base, "model", None)
    if not all(hasattr(x, a) for x, a in ((inner, "layers"), (inner, "norm"), (base, "lm_head"))):
        return None
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype), adapter_path)
    folded = config.fold(tuned)
    layers = folded.model.layers if folded is not tuned else tuned.base_model.model.model.layers
    return TwinModel(base, torch.nn.ModuleList(list(layers)[split:]).to(device), split)


def twin_scorer(model_path: str, adapter_path: str, **cfg):
    """A :class:`~behaviorlm_plugin.model.scoring.CandidateScorer` over :func:`load_twin`'s model (variants
    ``tuned`` and ``base``), or ``None`` where the two models cannot share layers. ``cfg``: ScoringConfig fields."""
    from transformers import AutoTokenizer

    check_model_path(str(model_path))
    check_adapter_path(str(adapter_path))
    config = ScoringConfig(**cfg)
    twin = load_twin(str(model_path), str(adapter_path), config)
    if twin is None:
        return None
    return CandidateScorer(twin, AutoTokenizer.from_pretrained(str(model_path)), config)
