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
if [ -x "$here/bin/run_hour.sh" ]; then
    exec "$here/bin/run_hour.sh" --workdir "$work/run" --data "$work/sim" --subbands 55 \
        --date 2024-12-20 --range 10h-11h --catalog "$work/sim/catalog.csv"
fi
# No driver yet: image the first integration so the observation can be checked by eye.
mkdir -p "$work/image"
first=$(head -1 "$work/sim_files.txt")
echo "demo: wsclean -size 512 512 -scale 0.25 -pol I,V -niter 1000 $first" >&2
wsclean -quiet -size 512 512 -scale 0.25 -pol I,V -niter 1000 -auto-threshold 3 \
    -name "$work/image/first" "$first" >&2
ls "$work/image"/*.fits
