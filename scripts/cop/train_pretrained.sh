#!/usr/bin/env bash
# Trains the small BQ-NCO checkpoints shipped in rlsuite/pretrained/ (run from the repository root).
# CPU budget: about 20 minutes per problem on 2 cores (labels + training); a GPU trains longer and
# larger models in the same time (raise --steps / --dim / --layers).
set -euo pipefail
RLSUITE=${RLSUITE:-.venv/bin/rlsuite}
DATA=${DATA:-runs/cop-data}
mkdir -p "$DATA"
train() {  # problem size instances solver label_time steps minutes
  local p=$1 n=$2 count=$3 solver=$4 tl=$5 steps=$6 minutes=$7
  if [ ! -f "$DATA/$p$n/labels.json" ]; then
    "$RLSUITE" cop generate --problem "$p" --size "$n" --count "$count" --seed 0 --out "$DATA/$p$n" --overwrite
    "$RLSUITE" cop label "$DATA/$p$n" --solver "$solver" --time-limit "$tl"
  fi
  "$RLSUITE" train bq-nco --problem "$p" --size "$n" --data "$DATA/$p$n" --total-steps "$steps" --time-limit $((minutes * 60)) \
    --dim 128 --layers 4 --heads 8 --ff 256 --batch-size 128 --seed 0 --run-dir "runs/pretrain-bq-nco-$p" --overwrite
  # the shipped format: model.safetensors + config.json of the run's final weights
  "$(dirname "$RLSUITE")/python" -c "from rlsuite.agents.bq_nco import BQNCO; BQNCO.load('runs/pretrain-bq-nco-$p').save('rlsuite/pretrained/bq_nco_$p')"
}
case "${1:-all}" in
  tsp) train tsp 50 4000 lkh 0.1 100000 "${MINUTES:-15}" ;;
  cvrp) train cvrp 50 2500 pyvrp 0.2 100000 "${MINUTES:-15}" ;;
  all) train tsp 50 4000 lkh 0.1 100000 "${MINUTES:-15}"; train cvrp 50 2500 pyvrp 0.2 100000 "${MINUTES:-15}" ;;
esac
