#!/usr/bin/env bash
# The learnability gate (docs/results/cpu-main/pilot/README.md): each training set-up the pilot tried, on the
# canary log, as --set changes of yaml_recipes/bench/canary.yaml, each into docs/results/cpu-main/pilot/canary/<set-up>/.
#   scripts/canary_gate.sh                 every set-up, in the order of the issue's preference
#   scripts/canary_gate.sh compact-fixed   one of them
# Each set-up is one `behaviorlm bench` run (a CPU hour at most; cached steps are reused on a re-run).
set -euo pipefail
cd "$(dirname "$0")/.."
BEHAVIORLM=${BEHAVIORLM:-.venv/bin/behaviorlm}
SUITE=yaml_recipes/bench/canary.yaml
OUT=docs/results/cpu-main/pilot/canary
ROW=${ROW:-fine-tuning (960)}

setup() {  # name, then --set items
  local name=$1
  shift
  case "$name" in
    paper-formats) ;;  # the shipped default: instruct1..3 drawn per sample, candidates in a random order
    instruct1-fixed) set -- --set prepare.name=canary_i1_fixed --set prepare.prompt_formats=instruct1 \
      --set prepare.fixed_candidate_order=true ;;
    compact) set -- --set prepare.name=canary_compact --set prepare.prompt_formats=compact ;;
    compact-fixed) set -- --set prepare.name=canary_compact_fixed --set prepare.prompt_formats=compact \
      --set prepare.fixed_candidate_order=true ;;
    compact-fixed-top8) set -- --set prepare.name=canary_compact_fixed --set prepare.prompt_formats=compact \
      --set prepare.fixed_candidate_order=true --set lora_top_layers=8 ;;
    *) echo "unknown set-up $name" >&2; exit 2 ;;
  esac
  echo "[canary-gate] $name: $(date -u +%FT%TZ)"
  "$BEHAVIORLM" bench "$SUITE" --only "zero-shot,$ROW" --set "out_dir=$OUT/$name" "$@"
}

if [ $# -eq 0 ]; then
  set -- paper-formats instruct1-fixed compact compact-fixed
fi
for name in "$@"; do
  setup "$name"
done
