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
#   PART        named parts of the suite (behaviorlm bench SUITE --list-parts), or `next`; none: the whole
#               suite, which does not fit one 10-minute device call. Part files go to OUT_DIR/suite/parts:
#               reuse the same OUT_DIR (carry it back) so a later call continues where this one stopped.
#
# The suite's own `prepare:` block makes (or reuses) the dataset, and bench_gpu.py trains and scores on
# that same dataset; MODEL_DIR replaces the suite's model_name_or_path.
#
# Environment:
#   PY               python with the package installed (default: .venv/bin/python if present, else python3)
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

# The suite's dataset, prepared (or reused) with exactly the suite's arguments; its folder and name.
read -r DATASET_DIR NAME < <("$PY" - "$SUITE" <<'PY'
import sys
from behaviorlm_plugin.data.prepare import ensure_prepared
from behaviorlm_plugin.runs.bench.runner import load_suite

args = load_suite(sys.argv[1]).prepare
ensure_prepared(args, log=lambda s: print(s, file=sys.stderr))
print(args.dataset_dir, args.name)
PY
)
[ -n "${NAME:-}" ] || { echo "gpu_evidence: could not prepare the dataset of $SUITE (see above)" >&2; exit 1; }
echo "[gpu_evidence] dataset: $DATASET_DIR/$NAME"

if [ "${SKIP_BENCH_GPU:-0}" != 1 ]; then
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
"$PY" -m behaviorlm_plugin.cli bench "$SUITE" --set "out_dir=$OUT/suite" --set "model_name_or_path=$MODEL" \
  "${PART_ARGS[@]}" ${BENCH_ARGS:-} \
  2>&1 | tee "$OUT/suite.log"
TIMES+=("$(stamp suite_done_s)")

( IFS=,; echo "{${TIMES[*]}}" ) > "$OUT/timings.json"
echo "[gpu_evidence] done in $(( $(date +%s) - T0 )) s: $OUT"
