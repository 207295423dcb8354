#!/usr/bin/env bash
# The learnability gate (docs/results/cpu-main/pilot/README.md): each training set-up the pilot tried, on the
# canary log, as --set changes of yaml_recipes/bench/canary.yaml, each into docs/results/cpu-main/pilot/canary/<set-up>/.
#   scripts/canary_gate.sh                 every set-up, in the order of the issue's preference
#   scripts/canary_gate.sh compact-fixed   one of them
# A set-up is a prompt set-up (paper-formats, instruct1-fixed, compact, compact-fixed), optionally followed by
# -<n>x<epochs> (default 960x3: 960 distinct samples, 3 epochs). Each is one `behaviorlm bench` run (minutes to
# under an hour here; cached steps, and the frozen layers' first pass, are reused on a re-run).
set -euo pipefail
cd "$(dirname "$0")/.."
BEHAVIORLM=${BEHAVIORLM:-.venv/bin/behaviorlm}
SUITE=yaml_recipes/bench/canary.yaml
OUT=docs/results/cpu-main/pilot/canary

setup() {  # name
  local name=$1 prompt=${1%%-[0-9]*x[0-9]*} budget n epochs
  budget=${name#"$prompt"}
  budget=${budget#-}
  n=960
  epochs=3
  if [ -n "$budget" ]; then
    n=${budget%x*}
    epochs=${budget#*x}
  fi
  local args=(--set "overrides.a_tuning.num_train_epochs=$epochs")
  case "$prompt" in
    paper-formats) ;;  # the shipped default: instruct1..3 drawn per sample, candidates in a random order
    instruct1-fixed) args+=(--set prepare.name=canary_i1_fixed --set prepare.prompt_formats=instruct1
      --set prepare.fixed_candidate_order=true) ;;
    compact) args+=(--set prepare.name=canary_compact --set prepare.prompt_formats=compact) ;;
    compact-fixed) args+=(--set prepare.name=canary_compact_fixed --set prepare.prompt_formats=compact
      --set prepare.fixed_candidate_order=true) ;;
    *) echo "unknown set-up $name (prompt set-ups: paper-formats, instruct1-fixed, compact, compact-fixed)" >&2
      exit 2 ;;
  esac
  echo "[canary-gate] $name: $n samples x $epochs epochs, $(date -u +%FT%TZ)"
  "$BEHAVIORLM" bench "$SUITE" --only "zero-shot,fine-tuning ($n)" --set "out_dir=$OUT/$name" "${args[@]}"
}

if [ $# -eq 0 ]; then
  set -- paper-formats instruct1-fixed compact compact-fixed paper-formats-960x1 paper-formats-480x3 \
    paper-formats-1920x1
fi
for name in "$@"; do
  setup "$name"
done
