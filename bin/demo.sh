#!/usr/bin/env bash
# README demo: simulate a short OVRO-LWA subband-hour with a known truth, then run the chain on it.
# Usage: bin/demo.sh WORKDIR
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: bin/demo.sh WORKDIR}
export PATH="$here/.venv/bin:$PATH"
export LWA_SYSTEM_CFG=${LWA_SYSTEM_CFG:-$here/../shared/data/ovro-lwa/system_cfg.yml}
mkdir -p "$work"
if [ ! -f "$work/sim/truth.json" ]; then
    lwa-sim observe "$here/docs/examples/demo_truth.yaml" -o "$work/sim" \
        --start 2024-12-20T11:55:00 --n-int 36 --subband 55 --n-channels 8 --n-antennas 64 -v \
        > "$work/sim_files.txt"
fi
echo "demo: simulated $(wc -l < "$work/sim_files.txt") integrations in $work/sim (truth: $work/sim/truth.json)" >&2
# The whole chain, locally, at demo size (768 px of 10 arcmin, 2 % of the CLEAN iterations).
exec "$here/bin/run_hour.sh" --range 10h-11h --date 2024-12-20 --subbands 55 --data "$work/sim" \
    --workdir "$work/run" --targets "$here/docs/examples/demo_targets.csv" --catalog "$work/sim/catalog.csv" \
    --hot-baselines --image-size 768 --image-scale-deg 0.1667 --niter-scale 0.02
