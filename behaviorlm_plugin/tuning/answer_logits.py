"""LM head at the answer positions only, during LoRA training.

A training sample here is a ~300-token prompt and a ~6-token answer, and only the answer is scored
(``labels`` are ``-100`` elsewhere). A stock causal LM still computes the logits of every position: with
SmolLM2's 49k vocabulary that is a ``[batch, seq, 49k]`` matmul forward and backward, plus a softmax
over it, for a few percent of the positions that count. :func:`use_answer_logits` makes the model compute
the head only at the positions where some row of the micro-batch has an answer token (``logits_to_keep``
as an index tensor: with right padding, a few dozen of ~300) and takes the model's own loss function over
them with the matching ``shift_labels``. The loss is the same sum over the same tokens (same normaliser,
``num_items_in_batch`` included), so the gradients are too; ``tests/tuning/test_answer_logits.py`` checks
both against the stock forward.

It only applies to training steps whose loss is the model's own. The stock forward runs in eval mode
(LLaMA-Factory's ``compute_accuracy`` lines logits up with the full labels), without ``labels`` (generation,
a ``compute_loss_func``), for a mixture-of-experts model that adds its router loss (``output_router_logits``),
and for a model whose ``forward`` has no ``logits_to_keep``. :func:`run_training` does not install it for
LLaMA-Factory losses that read the logits themselves (:data:`OWN_LOSS_KEYS`). With the Liger kernel on, the
fused head-and-loss is bypassed on these steps; the answer positions are fewer than its chunks.
"""

from __future__ import annotations

import inspect
import types

import torch

IGNORE_INDEX = -100
OWN_LOSS_KEYS = ("use_asft_loss", "use_eaft_loss")
"""LLaMA-Factory settings whose loss reads ``outputs.logits`` against the full labels."""


def _causal_lm(model):
    """The ``*ForCausalLM`` module under PEFT / DeepSpeed / DDP wrappers."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if "logits_to_keep" in inspect.signature(type(model).forward).parameters:
            return model
        for attr in ("module", "model"):  # DeepSpeed/DDP wrap in .module; PEFT and LoraModel hold .model
            inner = getattr(model, attr, None)
            if isinstance(inner, torch.nn.Module):
                model = inner
                break
        else:
            return None
    return None


def answer_positions(shift_labels: torch.Tensor) -> torch.Tensor:
    """Sequence positions (1-D) where some row has a label to predict."""
    return (shift_labels != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


def use_answer_logits(model) -> bool:
    """Patch the causal LM inside ``model`` (in place); False when it has no ``logits_to_keep``."""
    lm = _causal_lm(model)
    if lm is None:
        return False
    if getattr(lm, "_answer_logits", False):
        return True
    stock = lm.forward

    def forward(self, *args, labels=None, logits_to_keep=0, shift_labels=None, **kwargs):
        custom_cut = not (isinstance(logits_to_keep, int) and logits_to_keep == 0)
        plain = args or (labels is None and shift_labels is None) or custom_cut
        if plain or not self.training or getattr(self.config, "output_router_logits", False):
            return stock(*args, labels=labels, logits_to_keep=logits_to_keep, shift_labels=shift_labels, **kwargs)
        given = shift_labels
        if shift_labels is None:  # the model's own shift: position t predicts labels[t + 1]
            shift_labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        keep = answer_positions(shift_labels)
        if keep.numel() == 0:
            return stock(labels=labels, shift_labels=given, **kwargs)
        out = stock(logits_to_keep=keep, **kwargs)
        loss_kwargs = {k: v for k, v in kwargs.items() if k == "num_items_in_batch"}
        out.loss = self.loss_function(
            logits=out.logits,
            labels=None,
            shift_labels=shift_labels[:, keep].contiguous(),
            vocab_size=self.config.vocab_size,
            **loss_kwargs,
        )
        return out

    lm.forward = types.MethodType(forward, lm)
    lm._answer_logits = True
    return True


def answer_logits_callback():
    """A ``TrainerCallback`` that applies :func:`use_answer_logits` to the trainer's model before training."""
    from transformers import TrainerCallback

    class AnswerLogits(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if model is not None and not use_answer_logits(model):
                print("[train] answer-only logits: the model has no logits_to_keep; the stock forward is used")

    return AnswerLogits()
