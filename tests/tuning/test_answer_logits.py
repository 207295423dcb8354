"""Answer-only logits: the same loss and gradients as the stock forward, at fewer positions."""

from __future__ import annotations

import pytest
import torch

from behaviorlm_plugin.tuning.answer_logits import answer_positions, use_answer_logits


def _lora_model(seed: int = 0):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    for name, p in model.named_parameters():  # LoRA B starts at zero; give it values so every gradient is non-trivial
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    return model


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 97, (3, 24), generator=g)
    att = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    for r, (length, answer) in enumerate([(24, 4), (20, 3), (15, 5)]):  # right padding, answers at different places
        att[r, length:] = 0
        labels[r, length - answer : length] = ids[r, length - answer : length]
    return ids, att, labels


def _loss_and_grads(model, **extra):
    ids, att, labels = _batch()
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=att, labels=labels, **extra)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out, grads


@pytest.mark.parametrize("extra", [{}, {"num_items_in_batch": torch.tensor(40)}])
def test_same_loss_and_gradients_as_the_stock_forward(extra):
    model = _lora_model()
    stock, stock_grads = _loss_and_grads(model, **extra)
    assert use_answer_logits(model)
    patched, grads = _loss_and_grads(model, **extra)
    torch.testing.assert_close(patched.loss, stock.loss, rtol=1e-6, atol=1e-7)
    assert grads.keys() == stock_grads.keys() and len(grads) == 8
    for name, g in grads.items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(g, stock_grads[name], rtol=1e-5, atol=1e-7)
    # Only the answer positions got logits: 12 answer tokens at 12 distinct positions, not 24.
    assert patched.logits.shape == (3, 12, 97) and stock.logits.shape == (3, 24, 97)


def test_eval_mode_and_router_losses_keep_the_stock_forward():
    """Evaluation (compute_accuracy lines logits up with the full labels) and an MoE router loss need every
    position / the labels inside the model, so both take the stock path."""
    model = _lora_model()
    assert use_answer_logits(model)
    ids, att, labels = _batch()
    model.eval()
    with torch.no_grad():
        assert model(input_ids=ids, attention_mask=att, labels=labels).logits.shape == (3, 24, 97)
    model.train()
    model.base_model.model.config.output_router_logits = True
    with torch.no_grad():
        assert model(input_ids=ids, attention_mask=att, labels=labels).logits.shape == (3, 24, 97)


def test_no_labels_is_the_stock_forward():
    model = _lora_model()
    ids, att, _ = _batch()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=att).logits
        use_answer_logits(model)
        after = model(input_ids=ids, attention_mask=att).logits
    torch.testing.assert_close(after, before)


def test_answer_positions_is_the_union_over_rows():
    shift = torch.tensor([[-100, 5, -100, -100], [-100, -100, 7, -100]])
    assert answer_positions(shift).tolist() == [1, 2]


def test_a_model_without_logits_to_keep_is_left_alone():
    class Plain(torch.nn.Module):
        def forward(self, input_ids=None, labels=None):
            return input_ids

    model = Plain()
    assert not use_answer_logits(model)
    assert "forward" not in vars(model)


def test_in_process_training_applies_it(monkeypatch, tmp_path):
    """run_training hands LLaMA-Factory a callback that patches the trainer's model before the first step."""
    import llamafactory.train.tuner as tuner

    from behaviorlm_plugin.tuning.launcher import run_training

    seen = {}

    def fake_run_exp(args, callbacks=None):
        model = _lora_model()
        for cb in callbacks:
            cb.on_train_begin(None, None, None, model=model)
        seen["patched"] = getattr(model.base_model.model, "_answer_logits", False)

    monkeypatch.setattr(tuner, "run_exp", fake_run_exp)
    assert run_training({"output_dir": str(tmp_path)}, tmp_path / "train.yaml") == "run_exp (in-process)"
    assert seen == {"patched": True}
    # A LLaMA-Factory loss that reads the full logits itself gets no patch.
    run_training({"output_dir": str(tmp_path), "use_asft_loss": True}, tmp_path / "train.yaml")
    assert seen == {"patched": False}
