"""LoRA-tuned models and their base model in one forward pass, sharing the layers the adapters leave alone.

An evaluation puts tuned models beside the zero-shot base model on the same samples. When every adapter only
touches decoder layers ``split`` and above (the CPU recipe tunes the top 4 of 30), everything below ``split`` --
embeddings, layers, their KV cache -- is the same in all of them. :class:`TwinModel` runs it once: the base
model's own forward computes all layers (that is the zero-shot result) while pre-hooks on layers ``split``.. keep
the hidden states entering layer ``split`` and the exact arguments each of those layers gets (its mask, which
differs for sliding-window layers, rotary embeddings, cache positions); each adapter's tuned copies of layers
``split``.. (a *branch*) then run from those, each with its own base layer's arguments and a cache of their own,
followed by the shared final norm and LM head. For ``K`` adapters the cost is ``L + K (L - split)`` layers
instead of ``(K + 1) L``: a bench part scores all its models in one pass over the frozen layers.

The output stacks the models along the batch: rows ``[kB, (k+1)B)`` are branch ``k``, the last ``B`` rows the
base (:attr:`TwinModel.variants`; one branch: :data:`VARIANTS`). :class:`~behaviorlm_plugin.model.scoring.
CandidateScorer` reads them as variants. :func:`load_twin` returns ``None`` when nothing would be shared (an
adapter on layer 0, the embeddings or the LM head, ``modules_to_save``, an architecture without
``model.layers``); callers then score the models separately, which also keeps one model's weights in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from behaviorlm_plugin.model.paths import check_adapter_path, check_model_path
from behaviorlm_plugin.model.scoring import CandidateScorer, ScoringConfig, resolve_device

VARIANTS = ("tuned", "base")
"""The variants of a twin with one branch."""
BASE = "base"
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass
class TwinCache:
    """The base model's cache and each branch's cache (only layers ``split``.. are filled)."""

    base: Any
    tuned: list


@dataclass
class TwinOutput:
    logits: torch.Tensor
    past_key_values: TwinCache


class TwinModel(torch.nn.Module):
    """``base`` and, for each branch, its layers ``split``.. replaced by that branch's layers; see the module doc.

    ``branches``: one ``ModuleList`` of tuned layers (one adapter), or a sequence of them; ``names``: the variant
    name of each branch (default ``tuned`` for one, ``tuned_0``.. for several). ``with_base=False`` leaves the
    base model's own top layers and scores out (a pass that needs no zero-shot rows): the base then runs only
    the layers below ``split``, through stand-ins that record what the top layers would be called with."""

    def __init__(
        self, base, branches, split: int, names: Sequence[str] | None = None, *, with_base: bool = True
    ) -> None:
        super().__init__()
        branches = [branches] if isinstance(branches, torch.nn.ModuleList) else list(branches)
        layers = base.model.layers
        if not branches:
            raise ValueError("a twin needs at least one branch of tuned layers")
        for k, branch in enumerate(branches):
            if len(branch) != len(layers) - split:
                raise ValueError(
                    f"branch {k}: {len(branch)} tuned layers do not replace layers {split}..{len(layers) - 1}"
                )
        if names is None:
            names = ("tuned",) if len(branches) == 1 else tuple(f"tuned_{k}" for k in range(len(branches)))
        names = tuple(names)
        if len(names) != len(branches) or len(set(names)) != len(names) or BASE in names:
            raise ValueError(f"names {names} must be {len(branches)} distinct names, none of them {BASE!r}")
        self.base, self.branches, self.split = base, torch.nn.ModuleList(branches), split
        self.with_base = with_base
        self.variants = (*names, BASE) if with_base else names
        self.config = base.config

    @property
    def tuned_layers(self) -> torch.nn.ModuleList:
        """The first branch's layers (the one-adapter twin's)."""
        return self.branches[0]

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False, logits_to_keep=0
    ) -> TwinOutput:
        from transformers import DynamicCache

        cache = past_key_values or TwinCache(
            DynamicCache(config=self.config), [DynamicCache(config=self.config) for _ in self.branches]
        )
        # What each base layer from `split` up is called with: a model may give layers different masks (sliding
        # windows) or rotary embeddings, so tuned layer i gets exactly base layer i's keyword arguments.
        n_top = len(self.base.model.layers) - self.split
        seen: list = [None] * n_top

        def keeper(i: int):
            def keep(_module, args, kwargs):
                seen[i] = (args, dict(kwargs))

            return keep

        layers = self.base.model.layers
        if self.with_base:  # the base runs every layer; pre-hooks record the top layers' calls
            hooks = [
                layers[self.split + i].register_forward_pre_hook(keeper(i), with_kwargs=True) for i in range(n_top)
            ]
            restore = None
        else:  # stand-ins record the calls and pass the hidden states through: the top layers never run
            hooks, restore = [], list(layers[self.split :])
            for i, layer in enumerate(restore):
                layers[self.split + i] = _Recorder(layer, keeper(i))
        try:
            out = self.base(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache.base,
                use_cache=True,
                logits_to_keep=logits_to_keep if self.with_base else 1,
            )
        finally:
            for hook in hooks:
                hook.remove()
            for i, layer in enumerate(restore or []):
                layers[self.split + i] = layer
        first_args, first_kwargs = seen[0]
        entering = first_args[0] if first_args else first_kwargs["hidden_states"]  # the same in every model
        calls = [(args[1:], {k: v for k, v in kwargs.items() if k != "hidden_states"}) for args, kwargs in seen]
        cut = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        tops = []
        for branch, branch_cache in zip(self.branches, cache.tuned, strict=True):
            hidden = entering
            for layer, (args, kwargs) in zip(branch, calls, strict=True):
                hidden = layer(hidden, *args, **{**kwargs, "past_key_values": branch_cache})
                hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            tops.append(hidden[:, cut, :])
        # The shared norm and LM head once over every branch: one large product instead of one per branch.
        logits = self.base.lm_head(self.base.model.norm(torch.cat(tops)))
        return TwinOutput(torch.cat([logits, out.logits]) if self.with_base else logits, cache)


class _Recorder(torch.nn.Module):
    """Stands in for a top layer of the base model in a pass without the base's scores: hands its call to
    ``record`` and returns the hidden states unchanged. Carries the layer's ``attention_type`` (the mask a model
    picks for it). Not registered as a submodule of the layer: nothing is copied or trained."""

    def __init__(self, layer: torch.nn.Module, record) -> None:
        super().__init__()
        self.record = record
        if hasattr(layer, "attention_type"):
            self.attention_type = layer.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        self.record(self, (hidden_states, *args), kwargs)
        return hidden_states


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


def shared_split(adapter_paths: Sequence[str]) -> int | None:
    """The layer from which all of ``adapter_paths`` can branch off a shared pass (the lowest layer any of them
    changes), or ``None`` where one of them shares nothing (:func:`adapter_split`)."""
    splits = [adapter_split(str(p)) for p in adapter_paths]
    if not splits or any(s is None for s in splits):
        return None
    return min(splits)


def load_twin(
    model_path: str,
    adapter_paths: str | Sequence[str],
    config: ScoringConfig,
    names: Sequence[str] | None = None,
    *,
    with_base: bool = True,
) -> TwinModel | None:
    """The base model at ``model_path`` and, in a branch each, its layers tuned by each of ``adapter_paths``;
    ``None`` where they share nothing (:func:`shared_split`) or the model has no ``model.layers``.

    ``config`` gives the dtype, the device and whether an adapter is folded into the weights. A copy of the
    model is loaded per adapter to apply it; only its layers from the shared split up are kept.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    paths = _adapter_list(adapter_paths)
    split = shared_split(paths)
    if split is None:
        return None
    dtype, device = config.torch_dtype, resolve_device(config.device)
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
    inner = getattr(base, "model", None)
    if not all(hasattr(x, a) for x, a in ((inner, "layers"), (inner, "norm"), (base, "lm_head"))):
        return None
    branches = []
    for path in paths:
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype), path)
        folded = config.fold(tuned)
        layers = folded.model.layers if folded is not tuned else tuned.base_model.model.model.layers
        branches.append(torch.nn.ModuleList(list(layers)[split:]).to(device))
        del tuned, folded  # only the top layers stay
    return TwinModel(base, branches, split, names, with_base=with_base)


def twin_scorer(
    model_path: str,
    adapter_paths: str | Sequence[str],
    names: Sequence[str] | None = None,
    *,
    with_base: bool = True,
    **cfg,
):
    """A :class:`~behaviorlm_plugin.model.scoring.CandidateScorer` over :func:`load_twin`'s model (one variant per
    adapter, then ``base`` unless ``with_base=False``), or ``None`` where the models cannot share layers.
    ``cfg``: ScoringConfig fields."""
    from transformers import AutoTokenizer

    check_model_path(str(model_path))
    paths = _adapter_list(adapter_paths)
    for path in paths:
        check_adapter_path(path)
    config = ScoringConfig(**cfg)
    twin = load_twin(str(model_path), paths, config, names, with_base=with_base)
    if twin is None:
        return None
    return CandidateScorer(twin, AutoTokenizer.from_pretrained(str(model_path)), config)


def _adapter_list(adapter_paths) -> list[str]:
    """One adapter path (a str or a Path) or a sequence of them, as a list of str."""
    if isinstance(adapter_paths, str) or not isinstance(adapter_paths, Sequence):
        return [str(adapter_paths)]
    return [str(p) for p in adapter_paths]
