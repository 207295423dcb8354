#!/usr/bin/env bash
# One prepared GPU run: the throughput figures, then a bench suite (whole, or the named parts), with
# everything a report needs written under OUT_DIR.  Dry-run it on CPU with the tiny model first (the
# test tests/benchmarks/test_gpu_evidence.py does exactly that), then spend GPU time.
#
#   scripts/gpu_evidence.sh MODEL_DIR OUT_DIR [SUITE_YAML [PART ...]]
#
#   MODEL_DIR   the SmolLM2 folder (behaviorlm model prepare-default), or any model the suite runs on
#   OUT_DIR     created; gets environment.txt, gpu_throughput.json, bench_gpu.log, suite/ (results.json,
#               report.md, plots, per-part files), suite.log and timings.json
#   SUITE_YAML  default yaml_recipes/bench/gpu-main.yaml
#   PART        named parts of the suite (behaviorlm bench SUITE --list-parts); none: the whole suite
#
# Environment:
#   PY               python with the package installed (default: .venv/bin/python if present, else python3)
#   DATASET_DIR      where bench_gpu.py finds (or prepares) the default dataset (default: data)
#   DATASET_NAME     its name (default: behavior)
#   BENCH_GPU_ARGS   extra arguments for benchmarks/bench_gpu.py (e.g. "--models smollm2-135m")
#   SKIP_BENCH_GPU   1: skip the throughput bench (a later call that only runs suite parts)
#   BENCH_ARGS       extra arguments for `behaviorlm bench` (e.g. "--set seeds=[0]")
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,21p "$0"; exit 2; }
MODEL=$1
OUT=$2
SUITE=${3:-yaml_recipes/bench/gpu-main.yaml}
shift $(( $# >= 3 ? 3 : 2 ))
PARTS=("$@")
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DATASET_DIR=${DATASET_DIR:-data}
NAME=${DATASET_NAME:-behavior}
[ -d "$MODEL" ] || { echo "gpu_evidence: $MODEL is not a model folder (behaviorlm model prepare-default --out $MODEL)" >&2; exit 2; }
[ -f "$SUITE" ] || { echo "gpu_evidence: suite $SUITE not found" >&2; exit 2; }
mkdir -p "$OUT"
T0=$(date +%s)
stamp() { echo "\"$1\": $(( $(date +%s) - T0 ))"; }
TIMES=()

{
  echo "date: $(date -u +%FT%TZ)"
  echo "command: $0 $*"
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi")
  "$PY" - <<'PY'
import importlib.metadata as md
for p in ("torch", "transformers", "peft", "llamafactory", "liger-kernel", "flash-attn", "behaviorlm-plugin"):
    try:
        print(f"{p}: {md.version(p)}")
    except md.PackageNotFoundError:
        print(f"{p}: not installed")
PY
} > "$OUT/environment.txt"
cat "$OUT/environment.txt"

if [ "${SKIP_BENCH_GPU:-0}" != 1 ]; then
  if [ ! -f "$DATASET_DIR/$NAME/test_balanced.jsonl" ]; then
    echo "[gpu_evidence] preparing the default dataset $DATASET_DIR/$NAME"
    "$PY" -m behaviorlm_plugin.cli prepare --synthetic --dataset-dir "$DATASET_DIR" --name "$NAME" --tokenizer "$MODEL"
  fi
  echo "[gpu_evidence] throughput: benchmarks/bench_gpu.py"
  # shellcheck disable=SC2086  # BENCH_GPU_ARGS is a list of words on purpose
  "$PY" benchmarks/bench_gpu.py --model "$MODEL" --dataset-dir "$DATASET_DIR" --dataset "${NAME}_train_all" \
    --scoring-data "$DATASET_DIR/$NAME/test_balanced.jsonl" --sasrec-dataset "$NAME" \
    --out "$OUT/gpu_throughput.json" \
    ${BENCH_GPU_ARGS:-} 2>&1 | tee "$OUT/bench_gpu.log"
  TIMES+=("$(stamp bench_gpu_done_s)")
fi

echo "[gpu_evidence] suite: $SUITE ${PARTS[*]:-(all parts)}"
PART_ARGS=()
for p in "${PARTS[@]}"; do PART_ARGS+=(--part "$p"); done
# shellcheck disable=SC2086
"$PY" -m behaviorlm_plugin.cli bench "$SUITE" --set "out_dir=$OUT/suite" "${PART_ARGS[@]}" ${BENCH_ARGS:-} \
  2>&1 | tee "$OUT/suite.log"
TIMES+=("$(stamp suite_done_s)")

( IFS=,; echo "{${TIMES[*]}}" ) > "$OUT/timings.json"
echo "[gpu_evidence] done in $(( $(date +%s) - T0 )) s: $OUT"
