#!/usr/bin/env bash
# demo.sh — simulate a short OVRO-LWA subband-hour with a known truth, then run the whole chain on it.
#
#   bin/demo.sh WORKDIR [--truth SPEC] [--seed N] [--start UTC] [--peel-sky FILE] [--control [--control-run]]
#               [--targets FILE] [--config FILE] [--score]
#
#   --truth SPEC      lwa-sim truth spec (YAML/JSON; default docs/examples/demo_truth.yaml)
#   --seed N          noise/RFI seed of the simulation (default 0)
#   --start UTC       UTC start of the 6-min observation (default 2024-12-20T11:55:00); the LST hour
#                     and date given to run_hour.sh follow from it
#   --peel-sky FILE   TTCal sources.json peeled from every MS (run_hour.sh --peel-sky)
#   --control         also simulate the same sky without its A-team (same seed: the same noise) into
#                     WORKDIR/control; --score then scores the peel against it (lwa-sim score --control)
#   --control-run     also run the chain (same options, nothing peeled) on that control into
#                     WORKDIR/control_run; --score then measures the image RMS near the A-team against
#                     the control's own images (lwa-sim score --control-run) instead of estimating it
#   --targets FILE    target list for the photometry (default: docs/examples/demo_targets.csv for the
#                     demo sky; for another --truth, the sky's circularly polarised steady sources)
#   --config FILE     lwa-pipe config TOML given to every tool of the chain (run_hour.sh --config), e.g.
#                     another imaging.gridder; the demo's image size and CLEAN scale still apply
#   --score           afterwards score the run against the truth (lwa-sim score; WORKDIR/score.json)
#
# Demo size: 36 integrations of 10 s, 64 antennas of the compact core, 8 channels at 55 MHz, images
# of 512 px of 15 arcmin (restoring beams of 54-65 arcmin: 3.6-4.3 pixels), 2 % of the CLEAN
# iterations. Writes WORKDIR/sim/ (MS, truth.json, catalog.csv) and WORKDIR/run/ (run_hour.sh's
# work folder). A spec with `gains:` is calibrated: bandpass + XY-phase tables of the simulated
# instrument go to WORKDIR/cal/ and run_hour.sh applies them (--bp-table, --xy-table). Broadband
# emitters of the spec (channels: all) are peeled with the site's RFI list lwa-sim writes (--peel-rfi).
# Any sky runs through the same chain and options: bin/demo.sh /tmp/sky1 --truth my_sky.yaml --seed 3
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
work="" spec="$here/docs/examples/demo_truth.yaml" seed=0 start=2024-12-20T11:55:00 peel_sky="" score=0 targets=""
config=""
control=0 control_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --truth) spec=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --start) start=$2; shift 2 ;;
        --peel-sky) peel_sky=$2; shift 2 ;;
        --targets) targets=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --score) score=1; shift ;;
        --control) control=1; shift ;;
        --control-run) control=1 control_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "demo: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) [ -z "$work" ] || { echo "demo: one WORKDIR only (see --help)" >&2; exit 2; }; work=$1; shift ;;
    esac
done
[ -n "$work" ] || { usage >&2; exit 2; }
[ -f "$spec" ] || { echo "demo: error: truth spec not found: $spec" >&2; exit 1; }
[ -z "$config" ] || [ -f "$config" ] || { echo "demo: error: --config file not found: $config" >&2; exit 1; }
[ -z "$peel_sky" ] || [ -f "$peel_sky" ] || { echo "demo: error: --peel-sky file not found: $peel_sky" >&2; exit 1; }
[ -x "$here/.venv/bin/python" ] && export PATH="$here/.venv/bin:$PATH"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
n_int=36 int_s=10.031
mkdir -p "$work"
work=$(cd "$work" && pwd)
# The LST hour holding the observation's middle, and the UTC date on which run_hour.sh's
# LST-to-UTC mapping (the first time on that date at that LST) finds it.
read -r range date < <(python3 - "$start" "$((n_int))" "$int_s" <<'PY'
import sys

from astropy.time import Time

from lwa_common.site import lst_hour_of

try:
    t0 = Time(sys.argv[1], scale="utc")
except ValueError:
    sys.exit(f"demo: error: --start '{sys.argv[1]}' is not an ISO time like 2024-12-20T11:55:00")
print(*lst_hour_of(t0, float(sys.argv[2]) * float(sys.argv[3])))
PY
)
if [ ! -f "$work/sim/truth.json" ]; then
    lwa-sim observe "$spec" -o "$work/sim" --start "$start" --n-int "$n_int" --integration-s "$int_s" \
        --subband 55 --n-channels 8 --n-antennas 64 --layout core --seed "$seed" --overwrite -v \
        > "$work/sim_files.txt"
fi
if [ "$control" -eq 1 ] && [ ! -f "$work/control/truth.json" ]; then
    lwa-sim observe "$spec" -o "$work/control" --without-ateam --start "$start" --n-int "$n_int" \
        --integration-s "$int_s" --subband 55 --n-channels 8 --n-antennas 64 --layout core --seed "$seed" \
        --overwrite > /dev/null
fi
control_opt=()
[ "$control" -eq 1 ] && control_opt=(--control "$work/control")
[ "$control_run" -eq 1 ] && control_opt+=(--control-run "$work/control_run")
if [ -z "$targets" ] && [ "$spec" -ef "$here/docs/examples/demo_truth.yaml" ]; then
    targets="$here/docs/examples/demo_targets.csv"
elif [ -z "$targets" ]; then  # the sky's polarised steady sources, as a star list would name them
    python3 - "$work/sim/truth.json" "$work/targets.csv" <<'PY'
import json
import sys

rows = [s for s in json.load(open(sys.argv[1]))["sources"] if s.get("v_frac") and not s.get("transient")]
with open(sys.argv[2], "w") as f:
    f.write("common_name,ra_current,dec_current,detection_stokes\n")
    f.writelines(f"{s['name']},{s['ra_deg']:.6f},{s['dec_deg']:.6f},both\n" for s in rows)
PY
    [ "$(wc -l < "$work/targets.csv")" -le 1 ] || targets="$work/targets.csv"
fi
# A sky with instrument gains (the spec's `gains:`) is calibrated as a night is: run_hour.sh applies
# bandpass + XY-phase tables. The observatory's tables come from its calibrator solve (lwa-calib
# solve); here they are made from the simulated instrument's own gains (sim/true_gains_*.h5).
site_opt=()
gains_h5=$(find "$work/sim" -maxdepth 1 -name 'true_gains_*.h5' | head -1)
if [ -n "$gains_h5" ]; then
    xy_deg=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["gains"]["xy_phase_deg"])' \
        "$work/sim/truth.json")
    if [ ! -d "$work/cal/xyphase.Xf" ]; then
        lwa-calib tables-from-gains "$gains_h5" --template "$(head -1 "$work/sim_files.txt")" \
            -o "$work/cal" --xy-phase-deg "$xy_deg" --overwrite > /dev/null
    fi
    site_opt=(--bp-table "$work/cal/bandpass.B" --xy-table "$work/cal/xyphase.Xf")
fi
# A sky with broadband emitters on the horizon (spec `rfi:` entries with `channels: all`) has the
# site's RFI list in sim/rfi_sources.json (where they stand, as the site's RFI survey knows them):
# run_hour.sh peels them (--peel-rfi), as it peels the observatory's list; narrow-band RFI is flagged.
[ -f "$work/sim/rfi_sources.json" ] && site_opt+=(--peel-rfi "$work/sim/rfi_sources.json")
echo "demo: simulated $(wc -l < "$work/sim_files.txt") integrations in $work/sim (truth: $work/sim/truth.json); LST $range on $date" >&2
# The whole chain, locally, at demo size.
chain_opt=(--range "$range" --date "$date" --subbands 55 ${targets:+--targets "$targets"}
    --catalog "$work/sim/catalog.csv" --hot-baselines --image-size 512 --image-scale-deg 0.25
    --niter-scale 0.02 ${config:+--config "$config"} "${site_opt[@]}")
"$here/bin/run_hour.sh" "${chain_opt[@]}" --data "$work/sim" --workdir "$work/run" ${peel_sky:+--peel-sky "$peel_sky"}
# The control sky through the same chain with nothing to peel: the noise the peel is judged against.
if [ "$control_run" -eq 1 ]; then
    echo "demo: the control (the sky without its A-team) through the same chain into $work/control_run" >&2
    "$here/bin/run_hour.sh" "${chain_opt[@]}" --data "$work/control" --workdir "$work/control_run"
fi
if [ "$score" -eq 1 ]; then
    lwa-sim score "$work/run" --truth "$work/sim/truth.json" -o "$work/score.json" --overwrite "${control_opt[@]}"
fi
