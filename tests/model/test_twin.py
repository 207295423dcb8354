"""TwinModel: the tuned model and its base in one pass give each model's own scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from behaviorlm_plugin.model.scoring import CandidateScorer
from behaviorlm_plugin.model.twin import VARIANTS, TwinModel, adapter_split, twin_scorer

PROMPTS = [
    ("You predict the next behavior.", "Recent: Cooking, Go. What next?"),
    ("sys", "History: Watching video, Cooking, Watching Match, Go, Cooking. Next?"),
    (None, "Short"),
]
CAND_LISTS = [["Watching video", "Watching video clip", "Cooking", "Go"], ["Go", "Watching Match"], ["Cooking", "Go"]]

KW = {"batch_size": 3, "device": "cpu", "show_progress": False}


def _adapter(tiny_model, path, seed=1, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, **lora))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(path)
    return path


@pytest.mark.parametrize("merge", ["auto", "never"])
def test_each_variant_scores_as_its_own_model(tiny_model, tmp_path, merge):
    lora = {"target_modules": ["q_proj", "v_proj", "down_proj"], "layers_to_transform": [1]}  # layer 0 shared
    adapter = _adapter(tiny_model, tmp_path / "adapter", **lora)
    twin = twin_scorer(tiny_model, adapter, merge_adapter=merge, **KW)
    assert twin is not None and twin.variants == VARIANTS == ("tuned", "base")
    assert twin.model.split == 1
    tuned, base = twin.score_variants(PROMPTS, CAND_LISTS)
    alone_tuned = CandidateScorer.from_pretrained(tiny_model, adapter, merge_adapter="never", **KW).score(
        PROMPTS, CAND_LISTS
    )
    alone_base = CandidateScorer.from_pretrained(tiny_model, **KW).score(PROMPTS, CAND_LISTS)
    for t, b, at, ab in zip(tuned, base, alone_tuned, alone_base, strict=True):
        np.testing.assert_allclose(t, at, atol=1e-4, rtol=0)
        np.testing.assert_allclose(b, ab, atol=1e-5, rtol=0)
        assert np.abs(t - b).max() > 1e-3  # the adapter changes the scores, so the branches really differ
    # predict_variants ranks each variant's own scores; predict() is the first variant (the tuned model)
    labels = [c[0] for c in CAND_LISTS]
    p_tuned, p_base = twin.predict_variants(PROMPTS, CAND_LISTS, labels=labels, ids=list("abc"))
    assert [p.label for p in p_base] == [c[int(np.argmax(s))] for c, s in zip(CAND_LISTS, alone_base, strict=True)]
    assert [p.label for p in twin.predict(PROMPTS, CAND_LISTS)] == [p.label for p in p_tuned]


def test_several_adapters_in_one_pass_score_as_each_alone(tiny_model, tmp_path):
    """A part's models in one pass over the shared layers: each branch gives its own model's scores."""
    lora = {"target_modules": ["q_proj", "v_proj", "down_proj"], "layers_to_transform": [1]}
    adapters = [_adapter(tiny_model, tmp_path / f"a{k}", seed=k, **lora) for k in range(3)]
    twin = twin_scorer(tiny_model, adapters, names=["x", "y", "z"], **KW)
    assert twin is not None and twin.variants == ("x", "y", "z", "base")
    scored = twin.score_variants(PROMPTS, CAND_LISTS)
    alone = [
        CandidateScorer.from_pretrained(tiny_model, a, merge_adapter="never", **KW).score(PROMPTS, CAND_LISTS)
        for a in adapters
    ]
    alone.append(CandidateScorer.from_pretrained(tiny_model, **KW).score(PROMPTS, CAND_LISTS))
    for got, want in zip(scored, alone, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)
    for k in range(2):  # the branches really differ: each reads its own adapter
        assert max(np.abs(a - b).max() for a, b in zip(scored[k], scored[k + 1], strict=True)) > 1e-3
    with pytest.raises(ValueError, match="distinct names"):
        twin_scorer(tiny_model, adapters, names=["x", "x", "z"], **KW)
    # Without the base model's rows the pass skips its top layers: the tuned models' scores do not change.
    lean = twin_scorer(tiny_model, adapters, names=["x", "y", "z"], with_base=False, **KW)
    assert lean.variants == ("x", "y", "z")
    for got, want in zip(lean.score_variants(PROMPTS, CAND_LISTS), scored[:3], strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-6, rtol=0)


def test_branches_from_different_layers_match_their_own_models():
    """A branch whose lower tuned layers equal the base's (an adapter that starts higher than the shared split)
    still gives exactly its own model: every branch row equals a whole model with those top layers."""
    import copy

    base = _qwen_mixed()
    branches = [_copy_top(base, 1), _copy_top(base, 1)]
    torch.manual_seed(3)
    with torch.no_grad():
        for layer in branches[0]:  # adapter 0: layers 1..3
            for param in layer.parameters():
                param.add_(0.05 * torch.randn_like(param))
        for param in branches[1][1].parameters():  # adapter 1: layer 2 only
            param.add_(0.05 * torch.randn_like(param))
    twin = TwinModel(base, branches, 1).eval()
    assert twin.variants == ("tuned_0", "tuned_1", "base")
    ids = torch.randint(2, 50, (2, 12))
    att = torch.ones_like(ids)
    att[1, :3] = 0
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = twin(input_ids=ids, attention_mask=att, position_ids=pos, logits_to_keep=0).logits
        for k, branch in enumerate(branches):
            whole = copy.deepcopy(base)
            whole.model.layers = torch.nn.ModuleList([*list(whole.model.layers)[:1], *copy.deepcopy(list(branch))])
            want = whole(input_ids=ids, attention_mask=att, position_ids=pos).logits
            torch.testing.assert_close(out[2 * k : 2 * k + 2], want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[4:], base(input_ids=ids, attention_mask=att, position_ids=pos).logits)
        assert (out[0:2] - out[2:4]).abs().max() > 1e-3
        # Without the base's rows: stand-ins replace its top layers (sliding and full masks alike), then go.
        lean = TwinModel(base, branches, 1, with_base=False).eval()
        torch.testing.assert_close(lean(input_ids=ids, attention_mask=att, position_ids=pos).logits, out[:4])
        assert all(type(layer).__name__ != "_Recorder" for layer in base.model.layers)


@pytest.mark.parametrize(
    "lora",
    [
        {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]},
        {"target_modules": ["q_proj", "lm_head"]},
        {"target_modules": ["q_proj", "o_proj"]},  # layer 0 tuned: nothing to share, two passes keep one copy
    ],
)
def test_nothing_shared_means_no_twin(tiny_model, tmp_path, lora):
    adapter = _adapter(tiny_model, tmp_path / "adapter", **lora)
    assert adapter_split(str(adapter)) is None
    assert twin_scorer(tiny_model, adapter, **KW) is None
    with pytest.raises(ValueError, match="generation runs one model"):
        CandidateScorer(TwinModel(_qwen_mixed(), _copy_top(_qwen_mixed(), 1), 1), _FakeTok()).generate([], [])


def _qwen_mixed():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, sliding_window=4, use_sliding_window=True,
        layer_types=["full_attention", "full_attention", "sliding_attention", "sliding_attention"],
    )  # fmt: skip
    return Qwen2ForCausalLM(cfg).eval()


def _copy_top(model, split):
    import copy

    return torch.nn.ModuleList(copy.deepcopy(list(model.model.layers)[split:]))


class _FakeTok:
    eos_token, eos_token_id, pad_token_id = "</s>", 1, 0


def test_layers_with_their_own_masks_get_their_own_inputs():
    """Sliding-window and full-attention layers get different masks: each tuned layer must run with its own
    base layer's arguments. With tuned layers that are exact copies, both halves of the output are equal."""
    base = _qwen_mixed()
    twin = TwinModel(base, _copy_top(base, 1), 1).eval()
    ids = torch.randint(2, 50, (2, 12))
    att = torch.ones_like(ids)
    att[1, :3] = 0  # left padding, as the scorer batches
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = twin(input_ids=ids, attention_mask=att, position_ids=pos, logits_to_keep=0)
    torch.testing.assert_close(out.logits[:2], out.logits[2:], rtol=1e-5, atol=1e-5)
