from __future__ import annotations

import numpy as np
import pytest
import torch

from behaviorlm_plugin.model.scoring import CandidateScorer, ScoringConfig

CANDS = ["Watching video", "Watching video clip", "Watching Match", "Cooking", "Go"]
PROMPTS = [
    ("You predict the next behavior.", "Recent: Cooking, Go. What next?"),
    ("You predict the next behavior.", "A much longer history: " + ", ".join(CANDS * 4) + ". What comes next?"),
    (None, "Short"),
    ("sys", "Medium length history: Watching video, Cooking. Next?"),
]
CAND_LISTS = [CANDS, CANDS[::-1], CANDS[:2], ["Go", "Cooking", "Watching video clip"]]


@pytest.fixture(scope="module")
def model_and_tok(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(
        tiny_model
    )


def brute_force(model, tok, system, user, cands) -> np.ndarray:
    """Run every prompt+candidate sequence alone, without cache, and sum the candidate tokens' log-probs."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    p = tok(text, add_special_tokens=False)["input_ids"]
    out = []
    with torch.no_grad():
        for c in cands:
            full = tok(text + c + tok.eos_token, add_special_tokens=False)["input_ids"]
            assert full[: len(p)] == p
            ids = torch.tensor([full])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            out.append(sum(logp[t - 1, full[t]].item() for t in range(len(p), len(full))))
    return np.array(out)


def test_candidates_tokenize_to_mixed_lengths_sharing_prefixes(model_and_tok):
    _, tok = model_and_tok
    scorer = CandidateScorer(*model_and_tok, ScoringConfig(show_progress=False))
    _, cids = scorer.encode_sample(*PROMPTS[0], CANDS)
    assert len({len(c) for c in cids}) > 1  # mixed lengths
    assert cids[0][0] == cids[1][0] == cids[2][0]  # shared first token
    assert all(c[-1] == tok.eos_token_id for c in cids)
    assert cids[1][: len(cids[0]) - 1] == cids[0][:-1]  # "Watching video" is a prefix of "... clip"
    assert scorer.fallback_count == 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_score_matches_brute_force(model_and_tok, batch_size):
    model, tok = model_and_tok
    scorer = CandidateScorer(model, tok, ScoringConfig(batch_size=batch_size, show_progress=False))
    got = scorer.score(PROMPTS, CAND_LISTS)
    assert len(got) == len(PROMPTS)
    for (system, user), cands, g in zip(PROMPTS, CAND_LISTS, got, strict=True):
        ref = brute_force(model, tok, system, user, cands)
        assert g.shape == (len(cands),)
        np.testing.assert_allclose(g, ref, atol=1e-4, rtol=0)
        assert np.all(g < 0)


def test_prompt_lengths_differ_so_padding_is_exercised(model_and_tok):
    scorer = CandidateScorer(*model_and_tok, ScoringConfig(show_progress=False))
    lens = [len(scorer.encode_sample(s, u, ["Go"])[0]) for s, u in PROMPTS]
    assert len(set(lens)) == len(lens)


def test_batching_does_not_change_scores(model_and_tok):
    a = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=1, show_progress=False)).score(PROMPTS, CAND_LISTS)
    b = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=4, show_progress=False)).score(PROMPTS, CAND_LISTS)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4, rtol=0)


def test_lora_adapter_matches_brute_force(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)

    kw = {"batch_size": 3, "device": "cpu", "show_progress": False}
    scorer = CandidateScorer.from_pretrained(tiny_model, adapter, merge_adapter="never", **kw)
    assert type(scorer.model).__name__.startswith("Peft")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    got = scorer.score(PROMPTS, CAND_LISTS)
    plain = CandidateScorer.from_pretrained(tiny_model, device="cpu", show_progress=False).score(PROMPTS, CAND_LISTS)
    # float32: auto folds the adapter into the weights (faster), with the same scores to rounding
    merged = CandidateScorer.from_pretrained(tiny_model, adapter, **kw)
    assert not type(merged.model).__name__.startswith("Peft")
    folded = merged.score(PROMPTS, CAND_LISTS)
    for (system, user), cands, g, p, f in zip(PROMPTS, CAND_LISTS, got, plain, folded, strict=True):
        ref = brute_force(scorer.model, tok, system, user, cands)
        np.testing.assert_allclose(g, ref, atol=1e-4, rtol=0)
        np.testing.assert_allclose(f, ref, atol=1e-4, rtol=0)
        assert np.abs(g - p).max() > 1e-3  # the adapter actually changes the scores
    with pytest.raises(ValueError, match="merge_adapter must be"):
        ScoringConfig(merge_adapter="sometimes")


def test_predict(model_and_tok):
    scorer = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=2, show_progress=False))
    labels = ["Cooking", "Go", "Watching video clip", None]
    preds = scorer.predict(PROMPTS, CAND_LISTS, labels=labels, ids=["a", "b", "c", "d"], k=2)
    lps = scorer.score(PROMPTS, CAND_LISTS)
    for pred, cands, lp, label in zip(preds, CAND_LISTS, lps, labels, strict=True):
        assert pred.probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert pred.label == cands[int(np.argmax(pred.probs))] == cands[int(np.argmax(lp))]
        assert len(pred.top_k) == min(2, len(cands))
        assert pred.top_k[0] == (pred.label, pytest.approx(float(pred.probs.max())))
        assert [p for _, p in pred.top_k] == sorted((p for _, p in pred.top_k), reverse=True)
        np.testing.assert_allclose(pred.probs, np.exp(lp) / np.exp(lp).sum(), rtol=1e-6)
        if label is None:
            assert pred.true_prob is None and pred.true_rank is None
        else:
            t = cands.index(label)
            assert pred.true_prob == pytest.approx(pred.probs[t])
            assert pred.true_rank == 1 + int((pred.probs > pred.probs[t]).sum())
            assert (pred.true_rank == 1) == (pred.label == label)
    assert [p.id for p in preds] == ["a", "b", "c", "d"]


def test_too_long_prompt_raises_with_id(model_and_tok):
    probe = CandidateScorer(*model_and_tok, ScoringConfig(show_progress=False))
    p0, c0 = probe.encode_sample(*PROMPTS[0], CAND_LISTS[0])
    p1, c1 = probe.encode_sample(*PROMPTS[1], CAND_LISTS[1])
    need0, need1 = len(p0) + max(map(len, c0)), len(p1) + max(map(len, c1))
    assert need1 > need0
    scorer = CandidateScorer(*model_and_tok, ScoringConfig(max_length=need0, show_progress=False))
    with pytest.raises(ValueError, match=rf"sample 'long-one'.*max_length={need0}"):
        scorer.score(PROMPTS[:2], CAND_LISTS[:2], ids=["ok", "long-one"])
    # exactly at the limit is fine
    assert len(scorer.score(PROMPTS[:1], CAND_LISTS[:1], ids=["ok"])) == 1


def test_config_validation():
    with pytest.raises(ValueError, match="batch_size"):
        ScoringConfig(batch_size=0)
    with pytest.raises(ValueError, match="device"):
        ScoringConfig(device="tpu")


def test_progress_bar_over_samples(model_and_tok, capsys):
    scorer = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=3, show_progress=True))
    scorer.score(PROMPTS, CAND_LISTS)
    err = capsys.readouterr().err
    assert "scoring" in err and "4/4" in err


def test_llamafactory_template_mode_matches_training_encoding_and_brute_force(model_and_tok):
    """With template=..., prompt/answer ids are LLaMA-Factory's SFT encoding; scores equal a no-cache reference."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    model, tok = model_and_tok
    scorer = CandidateScorer(model, tok, ScoringConfig(batch_size=3, show_progress=False, template="smollm2"))
    tpl = get_template_and_fix_tokenizer(tok, DataArguments(template="smollm2"))
    got = scorer.score(PROMPTS, CAND_LISTS)
    for (system, user), cands, g in zip(PROMPTS, CAND_LISTS, got, strict=True):
        ref = []
        for c in cands:
            msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": c}]
            p, a = tpl.encode_oneturn(tok, msgs, system)
            a = a[: a.index(tok.eos_token_id) + 1]  # the answer ends at the end-of-turn token
            ids = torch.tensor([p + a])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            ref.append(sum(logp[len(p) + i - 1, t].item() for i, t in enumerate(a)))
        np.testing.assert_allclose(g, np.array(ref), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Watching video clip", "Watching video clip"),
        ("watching video clip.", "Watching video clip"),
        ("The answer is Watching video clip because", "Watching video clip"),  # longest match wins
        ("I think: watching video", "Watching video"),
        ("Sleeping", None),
        ("", None),
    ],
)
def test_parse_generation(text, expected):
    from behaviorlm_plugin.model.scoring import parse_generation

    assert parse_generation(text, CANDS).label == expected


def test_generate_returns_parsed_or_invalid(model_and_tok):
    scorer = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=3, show_progress=False))
    res = scorer.generate(PROMPTS, CAND_LISTS, max_new_tokens=4)
    assert len(res) == len(PROMPTS)
    for r, cands in zip(res, CAND_LISTS, strict=True):
        assert isinstance(r.raw, str)
        assert r.label is None or r.label in cands


def test_generation_is_unaffected_by_batch_padding(model_and_tok):
    one = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=1, show_progress=False))
    many = CandidateScorer(*model_and_tok, ScoringConfig(batch_size=4, show_progress=False))
    a = [r.raw for r in one.generate(PROMPTS, CAND_LISTS, max_new_tokens=5)]
    b = [r.raw for r in many.generate(PROMPTS, CAND_LISTS, max_new_tokens=5)]
    assert a == b and any(a)
