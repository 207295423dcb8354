"""LoRA on the top decoder layers only: the module names LLaMA-Factory's ``lora_target`` needs for it.

Autograd stops at the lowest layer with a trainable weight, so LoRA on the top N of L layers skips the
backward pass through the L - N layers below (the CPU quick-start's step times are in docs/tuning.md).
LLaMA-Factory has no such setting for LoRA, but its ``lora_target`` accepts full module names, which PEFT
matches by suffix; the names are read from the model's own module tree, built on the meta device
(no weights are loaded).
"""

from __future__ import annotations

import re
from functools import lru_cache

_LAYER = re.compile(r"^(?P<stack>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$")


class LoraLayersError(ValueError):
    """The model or the recipe cannot give a top-layer target list; the message says which and why."""


@lru_cache(maxsize=8)
def _linear_modules(model_path: str) -> tuple[int, tuple[str, ...]]:
    """(number of decoder layers, every linear module's name outside the LM head), without loading weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as err:
        raise LoraLayersError(f"lora_top_layers: cannot read the config of {model_path}: {err}") from err
    n_layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise LoraLayersError(f"lora_top_layers: {model_path}'s config has no num_hidden_layers")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    out_embed = model.get_output_embeddings()
    names = tuple(
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not out_embed
    )
    return n_layers, names


def top_layer_targets(model_path: str, n_top: int, lora_target: str = "all") -> list[str]:
    """Full names of the linear modules of the top ``n_top`` decoder layers of ``model_path``.

    ``lora_target`` is the recipe's own: ``all`` keeps every linear module of those layers; a comma list
    of module types (``q_proj,v_proj``) keeps those types only.
    """
    n_layers, names = _linear_modules(str(model_path))
    if not 1 <= n_top <= n_layers:
        raise LoraLayersError(f"lora_top_layers must be between 1 and {n_layers} (the model's layers), got {n_top}")
    wanted = None if lora_target.strip() == "all" else {t.strip() for t in lora_target.split(",") if t.strip()}
    picked = []
    for name in names:
        m = _LAYER.match(name)
        if m is None or int(m["index"]) < n_layers - n_top:
            continue
        if wanted is None or name.rsplit(".", 1)[-1] in wanted:
            picked.append(name)
    if not picked:
        raise LoraLayersError(
            f"lora_top_layers={n_top}: no linear module of {model_path}'s top layers matches lora_target "
            f"{lora_target!r}; use the module types the model has (e.g. q_proj,v_proj) or 'all'"
        )
    return picked
