#!/usr/bin/env bash
# run_hour.sh — the lwa-pipe driver: an LST range (split into LST hours) for a set of subbands.
#
# It only sequences the tools; every step is a tool command you can rerun by hand (each is logged
# to <workdir>/<hour>/<subband>/logs/<step>.log, first line the exact command).
#
#   bin/run_hour.sh --range 10h-11h --date 2024-12-20 --subbands 55,73 --data /lustre/night \
#       --workdir run/ [--bp-table bp.B --xy-table xy.Xf] [--targets a.csv ...] \
#       [--catalog FullVLSSCatalog.text] [--health badants.yml] [--hot-baselines] \
#       [--peel-sky ateam.json] [--peel-rfi rfi.json] [--flux-skymodel sh2012.skymodel] \
#       [--resume-science] [--run-label NAME] [--archive ROOT --sample NAME] [--config FILE] \
#       [--image-size N --image-scale-deg D --niter-scale F] [--local-workdir DIR] [--force STEP] [--db URL] \
#       [--slurm [--cpus N --mem 8G --time H:MM:SS --account A --partition P] [--remap SUBBAND=NODE ...] [--dry-run]]
#
# --peel-sky peels the sources of a TTCal sources.json from every MS (lwa-peel sky); with --catalog
# the catalogue's sources are kept fixed in that solve (lwa-peel sky --field), so it cannot eat them.
# The sky model is refined from the data once per subband-hour first (config peel.model_refine_once:
# lwa-peel refine-model on peel.model_refine_ms of the hour's MS -> <hour>/<sb>/peel-sky-model.json),
# and every MS's peel uses it with --model-refine-rounds 0 (peel.model_refine_once = false: each MS
# refines its own).
# --data is a flat folder of MS, or the observatory's archive <root>/<XXMHz>/<YYYY-MM-DD>/<HH>/
# holding YYYYMMDD_HHMMSS_XXMHz[_averaged].ms[.tar] (any depth works). The archive is only read:
# tars are unpacked into the work folder, MS copied there. --local-workdir (config
# cluster.local_workdir) puts the working MS (copies, unpacked tars, the hour's concatenation) on a
# node-local disk; products and logs stay in --workdir. With --slurm, config cluster.nodes
# ("SUBBAND=NODE" or "SUBBAND=partition:NAME"; --remap overrides one) pins a subband's Setup, Peel
# and Image jobs to its node; --slurm --dry-run prints the job graph (also in <workdir>/jobs/graph.tsv)
# (name, job id, options) without submitting anything. Without --slurm, --dry-run prints on stdout
# the exact command of every step (after the pre-flight audit), "[HOUR/SUBBAND] STEP: COMMAND", and
# runs nothing: no work folder, no state, no log (products not made yet appear as their patterns). Each job type asks Slurm for the CPUs and
# memory and the time limit of config cluster.jobs (sized from the peaks and times measured at real
# size, docs/performance.md) under config cluster.account; --cpus/--mem/--time/--account (or
# LWA_CPUS/LWA_MEM/LWA_TIME/LWA_ACCOUNT) override them for every job.
#
# Local mode runs Setup -> (Refine) -> Peel -> Image+science per subband, then the aggregation, each stage as
# its own process of this script. With --slurm it submits per subband a Setup job, a Refine job
# (the peel model, when refined once per hour), a Peel array job (one task per MS, config cluster.peel_tasks at once) and an Image job chained with afterok; the Image job ids
# go to <workdir>/<hour>/image_jobs.dep and one aggregation job per hour waits on all of them with
# afterany (a failed subband does not block the aggregation of the others; it is reported).
# A pre-flight audit (lwa-common audit) lists everything missing and exits 1 before any work.
# Run state: <workdir>/state.json (plain JSON, a view of one record per update in state.json.d/, so
# concurrent jobs lose nothing; per step: status, start, exit, seconds). A finished step is skipped
# on a rerun unless its command or an input file changed; --force STEP reruns it and every step
# after it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -x "$here/.venv/bin/python" ] && export PATH="$here/.venv/bin:$PATH"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} MPLBACKEND=Agg

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "run_hour: error: $*" >&2; exit 1; }

# ---- arguments ------------------------------------------------------------------------------
range="" date="" subbands="" data="" workdir="" archive="" bp="" xy="" catalog="" health=""
peel_sky="" peel_rfi="" hot=0 slurm=0 resume=0 run_label="" config="" stage="" stage_sb="" stage_hour=""
db="" remaps=() local_workdir="" dry_run=0 targets=() force=() size="" scale_deg="" niter_scale="" flux_skymodel="" sample="" cpus=${LWA_CPUS:-} mem=${LWA_MEM:-} partition=${LWA_PARTITION:-} time_limit=${LWA_TIME:-} account=${LWA_ACCOUNT:-}
orig_args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --range) range=$2; shift 2 ;;
        --date) date=$2; shift 2 ;;
        --subbands|--subband) subbands=${subbands:+$subbands,}$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --workdir) workdir=$2; shift 2 ;;
        --archive) archive=$2; shift 2 ;;
        --db) db=$2; shift 2 ;;  # lwa-db: ingest each hour after its aggregation (SQLite file or URL)
        --bp-table) bp=$2; shift 2 ;;
        --xy-table) xy=$2; shift 2 ;;
        --targets) targets+=("$2"); shift 2 ;;
        --force) force+=("$2"); shift 2 ;;
        --catalog) catalog=$2; shift 2 ;;
        --health) health=$2; shift 2 ;;
        --hot-baselines) hot=1; shift ;;
        --peel-sky) peel_sky=$2; shift 2 ;;
        --peel-rfi) peel_rfi=$2; shift 2 ;;
        --resume-science) resume=1; shift ;;
        --run-label) run_label=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --image-size) size=$2; shift 2 ;;
        --image-scale-deg) scale_deg=$2; shift 2 ;;
        --flux-skymodel) flux_skymodel=$2; shift 2 ;;
        --sample) sample=$2; shift 2 ;;
        --niter-scale) niter_scale=$2; shift 2 ;;
        --slurm) slurm=1; shift ;;
        --cpus) cpus=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --partition) partition=$2; shift 2 ;;
        --time) time_limit=$2; shift 2 ;;
        --account) account=$2; shift 2 ;;
        --remap) remaps+=("$2"); shift 2 ;;
        --local-workdir) local_workdir=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --stage) stage=$2; stage_hour=$3; stage_sb=$4; shift 4 ;;
        -h|--help) usage; exit 0 ;;
        --version) echo "run_hour.sh $(lwa-common --version | cut -d" " -f2-)"; exit 0 ;;
        *) echo "run_hour: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for req in range date subbands data workdir; do
    [ -n "${!req}" ] || { echo "run_hour: --$req is required (see --help)" >&2; exit 2; }
done
local_dry=0
[ "$dry_run" -eq 1 ] && [ "$slurm" -eq 0 ] && local_dry=1
if [ "$local_dry" -eq 1 ]; then  # nothing is written: the plan goes to a temporary folder
    workdir=$(realpath -m -- "$workdir")
    dry_tmp=$(mktemp -d)
    trap 'rm -rf "$dry_tmp"' EXIT
else
    mkdir -p "$workdir"
    workdir=$(cd "$workdir" && pwd)
fi
data=$(cd "$data" 2>/dev/null && pwd) || die "--data folder not found: $data"
IFS=, read -r -a subband_list <<< "$subbands"
for i in "${!subband_list[@]}"; do s=${subband_list[$i]%MHz}; subband_list[$i]="${s}MHz"; done
state="$workdir/state.json"
plan="${dry_tmp:-$workdir}/plan.json"
cfg_opt=()
[ -n "$config" ] && cfg_opt=(--config "$config")

# ---- helpers -----------------------------------------------------------------------------------
# fingerprint CMD...: what a step's done-marker records: the exact command line, and the size and
# modification time of every regular file among its arguments that is not its output (tables,
# targets, catalogues, config, images), and of the files directly inside a folder argument (an
# image folder: a product added or remade there reruns the step). Measurement sets are named in
# the command; their content is not hashed (flaggers change them in place).
fingerprint() {
    printf '%q ' "$@"; printf '\n'
    local a prev="" out=""
    for a in "$@"; do case "$prev" in -o|--output) out=$a ;; esac; prev=$a; done
    prev=""
    for a in "$@"; do
        case "$prev" in -o|--output) prev=$a; continue ;; esac
        if [ -f "$a" ]; then
            stat -c '%n %s %Y' -- "$a"
        elif [ -d "$a" ] && [[ "$a" != *.ms ]] && [ "$a" != "$out" ]; then  # not the step's own output folder
            find "$a" -maxdepth 1 -type f ! -name '.*' -printf '%p %s %T@\n' | sort
        fi
        prev=$a
    done
    return 0
}

# step NAME CMD...: run one tool command, logging the exact command line, its start, end, duration and
# exit status and its output to $logs/NAME.log. A step is skipped when its done-marker records the same
# command and inputs; a changed command or input (or --force NAME) reruns it and every later step of
# its subband (their markers are newer), and the hour's aggregation.
step() {
    local name=$1; shift
    set -- "$@" -v  # every tool at INFO: its progress and timings go to the step log
    local log="$logs/$name.log" marker="$logs/.$name.done" want
    want=$(fingerprint "$@")
    if [ "$local_dry" -eq 1 ]; then  # --dry-run: the exact command, nothing run
        local skip=""
        [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && ! forced "$name" && skip=" (done before: would be skipped)"
        { printf '[%s] %s%s:' "$tag" "$name" "$skip"; printf ' %q' "$@"; printf '\n'; } | sed 's/\\\*/*/g'
        return 0
    fi
    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && ! forced "$name"; then
        echo "run_hour: [$tag] $name: done before with the same command and inputs, skipped" >&2; return 0
    fi
    if [ -f "$marker" ]; then  # rerun: later steps of this subband and the hour's aggregation are stale
        find "$logs" -maxdepth 1 -name '.*.done' -newer "$marker" -delete
        rm -f "$marker"
        [ "${tag#*/}" != all ] && rm -f "$dir/../logs"/.*.done
    fi
    local line="$*"
    [ ${#line} -le 400 ] || line="${line:0:400} ... (full command in $log)"
    echo "run_hour: [$tag] $name: $line" >&2
    { printf '$'; printf ' %q' "$@"; printf '\n'; } > "$log"
    local t0 rc=0
    t0=$(date +%s)
    echo "# start $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$log"
    note_state "steps.$tag/$name.status=running" "steps.$tag/$name.start=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # the full output of wsclean/aoflagger/DP3 goes to $logs/$name.<tool>.log (lwa_common.provenance)
    local run=(env LWA_TOOL_LOG_DIR="$logs" LWA_STEP="$name" "$@")
    if [ -x /usr/bin/time ]; then  # GNU time: the step's CPU seconds and peak RSS (with its children) in its log
        /usr/bin/time -a -o "$log" -f '# lwa-pipe rusage: wall %e s, user %U s, system %S s, max_rss %M KB' \
            "${run[@]}" >> "$log" 2>&1 || rc=$?
    else
        "${run[@]}" >> "$log" 2>&1 || rc=$?
    fi
    local took=$(( $(date +%s) - t0 ))
    echo "# lwa-pipe step $name: exit $rc after $took s, end $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$log"  # the weblog reads it
    note_state "steps.$tag/$name.status=$([ $rc -eq 0 ] && echo done || echo failed)" \
        "steps.$tag/$name.exit=$rc" "steps.$tag/$name.seconds=$took"
    if [ $rc -eq 0 ]; then
        fingerprint "$@" > "$marker"
        echo "run_hour: [$tag] $name: done in ${took}s" >&2
    else
        echo "run_hour: [$tag] $name FAILED (exit $rc after ${took}s); log: $log" >&2
        grep -v '^# ' "$log" | tail -n 3 | sed 's/^/    /' >&2
        note_state "subbands.$tag.failed=$name"
        return $rc
    fi
}

# forced NAME: --force names this step (or its family: --force peel-sky matches peel-sky-3)
forced() {
    local f
    for f in "${force[@]}"; do [ "$1" = "$f" ] || [ "${1%-[0-9]*}" = "$f" ] && return 0; done
    return 1
}

# note_state KEY=VALUE...: record progress in the run-state JSON (never fatal)
note_state() {
    [ "$local_dry" -eq 1 ] && return 0
    lwa-common state "$state" "$@" || echo "run_hour: could not update $state" >&2
}

# have PATH: PATH exists (under --dry-run every product the steps would make counts as made)
have() { [ "$local_dry" -eq 1 ] || [ -e "$1" ]; }

# optional STEP: a failure is reported but the chain goes on (QA and science extras)
optional() { step "$@" || echo "run_hour: [$tag] $1 failed; continuing without it" >&2; }

subband_dirs() {  # HOUR SB -> sets dir (products), work (working MS: node-local when asked), logs, tag
    local hour=$1 sb=$2 local_root
    dir="$workdir/$hour/$sb"
    local_root=${local_workdir:-$(plan_value local_workdir)}
    work="${local_root:-$workdir}/$hour/$sb"
    logs="$dir/logs"
    tag="$hour/$sb"
    [ "$local_dry" -eq 1 ] || mkdir -p "$logs" "$work"
}

plan_value() {  # KEY -> a top-level string of the plan
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$plan" "$1"
}

placement() {  # SB -> the sbatch option pinning the subband's jobs (--nodelist=N / --partition=P), or nothing
    python3 - "$plan" "$1" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])).get("placement", {}).get(sys.argv[2], {})
print("--nodelist=" + p["node"] if "node" in p else "--partition=" + p["partition"] if "partition" in p else "")
PY
}

ms_list() {  # HOUR SB -> the plan's MS files, one per line
    python3 - "$plan" "$2" "$1" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
print("\n".join(plan["ms"].get(sys.argv[2], {}).get(sys.argv[3], [])))
PY
}

hours_of_plan() {
    python3 -c 'import json,sys; print(" ".join(h["label"] for h in json.load(open(sys.argv[1]))["hours"]))' "$plan"
}

lst_of_hour() {  # HOUR -> lst_start_h lst_end_h
    python3 -c 'import json,sys; h=[h for h in json.load(open(sys.argv[1]))["hours"] if h["label"]==sys.argv[2]][0]; print(h["lst_start_h"], h["lst_end_h"])' "$plan" "$1"
}

# ---- stages ------------------------------------------------------------------------------------
# Image-size knobs (defaults: the science parameters of lwa_common.config) for quick runs.
img_opts=() snap_opts=()
[ -n "$size" ] && img_opts+=(--size "$size") && snap_opts+=(--size "$size")
[ -n "$scale_deg" ] && img_opts+=(--scale-deg "$scale_deg") && snap_opts+=(--scale-deg "$scale_deg")
[ -n "$niter_scale" ] && img_opts+=(--niter-scale "$niter_scale")

stage_setup() {  # HOUR SB: calibrated (or plain) working copies of the hour's MS; inputs never touched
    subband_dirs "$1" "$2"
    mapfile -t files < <(ms_list "$1" "$2")
    [ ${#files[@]} -gt 0 ] || { echo "run_hour: [$tag] no MS in the plan" >&2; return 1; }
    [ "$local_dry" -eq 1 ] || mkdir -p "$work/ms"
    local f tars=() plain=()
    for f in "${files[@]}"; do
        if [[ $f == *.ms.tar ]]; then tars+=("$f"); else plain+=("$f"); fi
    done
    if [ ${#tars[@]} -gt 0 ]; then  # unpacked into the work folder, never into the archive
        optional unpack lwa-common unpack "${tars[@]}" -o "$work/unpacked" "${cfg_opt[@]}"
        [ -s "$work/unpacked/unpack_failed.txt" ] && sed 's/^/    unusable: /' "$work/unpacked/unpack_failed.txt" >&2
        for f in "$work"/unpacked/*.ms; do [ -d "$f" ] && plain+=("$f"); done
        if [ "$local_dry" -eq 1 ]; then for f in "${tars[@]}"; do f=$(basename "$f"); plain+=("$work/unpacked/${f%.tar}"); done; fi
    fi
    [ ${#plain[@]} -gt 0 ] || { echo "run_hour: [$tag] no usable MS" >&2; return 1; }
    if [ -n "$bp" ]; then
        step calibrate lwa-calib apply "${plain[@]}" --bp-table "$bp" ${xy:+--xy-table "$xy"} \
            -o "$work/ms" --overwrite "${cfg_opt[@]}"
    else
        for f in "${plain[@]}"; do  # plain working copies, renamed into place when complete
            local name; name=$(basename "$f")
            [ -e "$work/ms/$name" ] && continue
            if [ "$local_dry" -eq 1 ]; then printf '[%s] copy: cp -r --dereference %q %q\n' "$tag" "$f" "$work/ms/$name"; continue; fi
            if [[ $f == "$work"/unpacked/* ]]; then mv "$f" "$work/ms/$name"; continue; fi
            cp -r --dereference --preserve=timestamps "$f" "$work/ms/.$name.part" && mv "$work/ms/.$name.part" "$work/ms/$name"
        done
        [ "$local_dry" -eq 1 ] || echo "run_hour: [$tag] ${#plain[@]} working MS in $work/ms" >&2
    fi
    [ "$local_dry" -eq 0 ] && [ -d "$work/unpacked" ] && find "$work/unpacked" -mindepth 1 -maxdepth 1 -name '*.ms' -exec rm -rf {} +
    note_state "subbands.$tag.setup=done"
}

refine_once() {  # the sky peel's model is refined once per subband-hour (config peel.model_refine_once)
    [ -n "$peel_sky" ] && [ "$(plan_value peel_refine_once)" = 1 ]
}

stage_refine() {  # HOUR SB: the sky peel's model refined from the hour's working MS (lwa-peel refine-model)
    subband_dirs "$1" "$2"
    refine_once || return 0
    mapfile -t files < <(ms_list "$1" "$2")
    local f name present=()
    for f in "${files[@]}"; do
        name=$(basename "$f"); name=${name%.tar}
        have "$work/ms/$name" && present+=("$work/ms/$name")
    done
    [ ${#present[@]} -gt 0 ] || { echo "run_hour: [$tag] no working MS to refine the peel model from" >&2; return 1; }
    step peel-model lwa-peel refine-model "${present[@]}" --sources "$peel_sky" ${catalog:+--field "$catalog"} \
        -o "$dir/peel-sky-model.json" --overwrite "${cfg_opt[@]}"
}

stage_peel() {  # HOUR SB [INDEX]: peel one working MS (array task) or all of them
    subband_dirs "$1" "$2"
    mapfile -t files < <(ms_list "$1" "$2")
    local idx=${3:-${SLURM_ARRAY_TASK_ID:-all}} i sky_model=("$peel_sky")
    refine_once && sky_model=("$dir/peel-sky-model.json" --model-refine-rounds 0)  # refined by stage_refine
    for i in "${!files[@]}"; do
        [ "$idx" = all ] || [ "$idx" = "$i" ] || continue
        local name; name=$(basename "${files[$i]}"); name=${name%.tar}
        local ms="$work/ms/$name"
        have "$ms" || continue  # an unusable input (reported by Setup)
        [ -n "$peel_sky" ] && step "peel-sky-$i" lwa-peel sky "$ms" --sources "${sky_model[@]}" ${catalog:+--field "$catalog"} \
            --in-place "${cfg_opt[@]}"
        [ -n "$peel_rfi" ] && step "peel-rfi-$i" lwa-peel rfi "$ms" --sources "$peel_rfi" --in-place "${cfg_opt[@]}"
    done
    [ "$idx" = all ] && note_state "subbands.$tag.peel=done"
    return 0
}

stage_image() {  # HOUR SB: concat at the LST-hour meridian, flag, QA, science images, science steps
    subband_dirs "$1" "$2"
    local hour=$1 sb=$2 lst ms="$work/$2-$1.ms" img="$dir/images"
    read -r lst _ < <(lst_of_hour "$hour")
    if [ "$resume" -eq 0 ]; then
        step concat lwa-image concat "$work"/ms/*.ms -o "$ms" --lst-hour "$lst" --overwrite "${cfg_opt[@]}"
        [ -n "$health" ] && step flag-antennas lwa-flag antennas "$ms" "$health" --in-place "${cfg_opt[@]}"
        step flag-rfi lwa-flag rfi "$ms" --in-place "${cfg_opt[@]}"
        if [ "$hot" -eq 1 ]; then
            step flag-hot lwa-flag hot-baselines "$ms" --in-place --qa-dir "$dir/qa" "${cfg_opt[@]}"
        fi
        step snapshots lwa-image snapshots "$ms" -o "$dir/snapshots" "${snap_opts[@]}" --overwrite "${cfg_opt[@]}"
        optional flag-integrations lwa-flag integrations "$dir"/snapshots/*-V-*.fits --ms "$ms" --in-place \
            --qa-dir "$dir/qa" "${cfg_opt[@]}"
        step science lwa-image science "$ms" -o "$img" --subband "$sb" "${img_opts[@]}" --overwrite "${cfg_opt[@]}"
    else
        ls "$img"/*-image.fits >/dev/null 2>&1 || [ "$local_dry" -eq 1 ] \
            || { echo "run_hour: [$tag] --resume-science: no images in $img" >&2; return 1; }
        [ "$local_dry" -eq 1 ] || rm -f "$logs"/.pbcor.done "$logs"/.dewarp-*.done "$logs"/.targets.done "$logs"/.solar.done \
            "$logs"/.transients.done "$logs"/.movie.done
    fi
    science_steps "$hour" "$sb"
    note_state "subbands.$tag.image=done"
}

science_steps() {  # HOUR SB: everything after imaging (rerun by --resume-science)
    local img="$dir/images"
    step pbcor lwa-image pbcor "$img"/*-image.fits --overwrite "${cfg_opt[@]}"
    local deep="$img/$2-I-Deep-Taper-Robust-0-image-pbcorr.fits"  # PB-corrected: a tight flux test (dewarp.flux_ratio_max_pbcor)
    if [ -n "$catalog" ] && have "$deep"; then
        step dewarp-fit lwa-dewarp fit "$deep" --catalog "$catalog" -o "$dir/dewarp/screen.fits" --overwrite "${cfg_opt[@]}"
        if have "$dir/dewarp/screen.fits"; then
            step dewarp-apply lwa-dewarp apply "$img"/*-image.fits "$img"/*-image-pbcorr.fits \
                --screen "$dir/dewarp/screen.fits" -o "$img" --overwrite "${cfg_opt[@]}"
        else
            echo "run_hour: [$tag] too few dewarp anchors: continuing undewarped" >&2
        fi
    fi
    if [ ${#targets[@]} -gt 0 ]; then
        optional targets lwa-cutout targets "${targets[@]}" --images "$img" -o "$dir/photometry" --overwrite "${cfg_opt[@]}"
    fi
    optional solar lwa-cutout solar-system --images "$img" -o "$dir/solar" --overwrite "${cfg_opt[@]}"
    optional transients lwa-transient search "$img" -o "$dir/transients" ${catalog:+--catalog "$catalog"} \
        --overwrite "${cfg_opt[@]}"
    have "$dir/snapshots" && optional movie lwa-image movie "$dir/snapshots" -o "$dir/movies" --overwrite "${cfg_opt[@]}"
    return 0
}

stage_aggregate() {  # HOUR: after all subbands: flux scale, wideband stacks, colour, search, gather, report
    local hour=$1
    dir="$workdir/$hour"; logs="$dir/logs"; tag="$hour/all"
    local imgs=() s
    if [ "$local_dry" -eq 1 ]; then
        for s in "${subband_list[@]}"; do [ -n "$(ms_list "$hour" "$s")" ] && imgs+=("$dir/$s/images"); done
    else
        mkdir -p "$logs"
        for s in "$dir"/*MHz/images; do [ -d "$s" ] && imgs+=("$s"); done
    fi
    for s in "${subband_list[@]}"; do
        have "$workdir/$hour/$s/logs/.science.done" || echo "run_hour: [$tag] subband $s has no images (failed or not run); aggregating the others" >&2
    done
    [ ${#imgs[@]} -gt 0 ] || { echo "run_hour: [$tag] no subband produced images" >&2; return 1; }
    [ -n "$flux_skymodel" ] && optional flux-check lwa-cutout flux-check --images "${imgs[@]}" \
        --skymodel "$flux_skymodel" -o "$dir/qa" --overwrite "${cfg_opt[@]}"
    optional wideband lwa-stack wideband "${imgs[@]}" -o "$dir/Wideband" --overwrite "${cfg_opt[@]}"
    if have "$dir/Wideband"; then
        optional color lwa-stack color "$dir/Wideband" -o "$dir/Wideband" --overwrite "${cfg_opt[@]}"
        optional wideband-search lwa-transient search "$dir/Wideband" -o "$dir/Wideband/transients" \
            ${catalog:+--catalog "$catalog"} --overwrite "${cfg_opt[@]}"
        optional wideband-solar lwa-cutout solar-system --images "$dir/Wideband" -o "$dir/Wideband/solar" \
            --overwrite "${cfg_opt[@]}"
    fi
    step gather lwa-stack gather "$dir" -o "$dir/summary" --overwrite "${cfg_opt[@]}"
    [ -n "$db" ] && step db-ingest lwa-db ingest "$dir" --db "$db" "${cfg_opt[@]}"
    step report lwa-stack report "$dir" -o "$dir/weblog" ${db:+--db "$db"} --overwrite "${cfg_opt[@]}"
    [ -n "$archive" ] && step archive lwa-stack archive "$dir" --archive-root "$archive" \
        --sample "${sample:-default}" --run-name "${run_label:-$(basename "$workdir")}-$date-$hour" "${cfg_opt[@]}"
    note_state "hours.$hour.aggregate=done"
}

# ---- one stage (how Slurm jobs call back into this script) --------------------------------------
if [ -n "$stage" ]; then
    case "$stage" in
        setup) stage_setup "$stage_hour" "$stage_sb" ;;
        refine) stage_refine "$stage_hour" "$stage_sb" ;;
        peel) stage_peel "$stage_hour" "$stage_sb" ;;
        image) stage_image "$stage_hour" "$stage_sb" ;;
        aggregate) stage_aggregate "$stage_hour" ;;
        *) die "unknown stage '$stage'" ;;
    esac
    exit $?
fi

# ---- pre-flight audit: everything missing in one table, exit 1 before any work -----------------
audit_args=(--data "$data" --subbands "$subbands" --range "$range" --date "$date" --workdir "$workdir")
[ -n "$bp" ] && audit_args+=(--bp-table "$bp")
[ -n "$xy" ] && audit_args+=(--xy-table "$xy")
for f in "${targets[@]}" "$catalog" "$health" "$peel_sky" "$peel_rfi" "$flux_skymodel"; do
    [ -n "$f" ] && audit_args+=(--file "$f")
done
for t in wsclean aoflagger lwa-image lwa-flag lwa-dewarp lwa-cutout lwa-transient lwa-stack; do audit_args+=(--tool "$t"); done
[ -n "$bp" ] && audit_args+=(--tool lwa-calib)
{ [ -n "$peel_sky" ] || [ -n "$peel_rfi" ]; } && audit_args+=(--tool lwa-peel --tool DP3.py)
[ "$slurm" -eq 1 ] && [ "$dry_run" -eq 0 ] && audit_args+=(--tool sbatch)
for r in "${remaps[@]}"; do audit_args+=(--remap "$r"); done
[ -n "$db" ] && audit_args+=(--tool lwa-db)
lwa-common audit "${audit_args[@]}" -o "$plan" "${cfg_opt[@]}" >/dev/null || exit 1
read -r -a hours <<< "$(hours_of_plan)"
self_args=()
for a in "${orig_args[@]}"; do [ "$a" = "--slurm" ] || [ "$a" = "--dry-run" ] || self_args+=("$a"); done
note_state "range=$range" "date=$date" "subband_labels=$subbands" "mode=$([ "$slurm" -eq 0 ] && echo local || { [ "$dry_run" -eq 1 ] && echo slurm-dry-run || echo slurm; })"

if [ "$local_dry" -eq 1 ]; then
    # ---- local --dry-run: every step's command, in the order a local run takes them -----------
    for hour in "${hours[@]}"; do
        for sb in "${subband_list[@]}"; do
            [ -n "$(ms_list "$hour" "$sb")" ] || continue
            [ "$resume" -eq 1 ] || { stage_setup "$hour" "$sb"; stage_refine "$hour" "$sb"; stage_peel "$hour" "$sb" all; }
            stage_image "$hour" "$sb"
        done
        stage_aggregate "$hour"
    done
    exit 0
fi

if [ "$slurm" -eq 0 ]; then
    # ---- local: Setup -> Peel -> Image per subband, then the aggregation ----------------------
    # Each stage runs as its own process of this script, exactly as the Slurm jobs do.
    run_subband() {
        local me="$here/bin/run_hour.sh"
        if [ "$resume" -eq 0 ]; then
            "$me" "${self_args[@]}" --stage setup "$1" "$2" || return 1
            if [ -n "$peel_sky" ] || [ -n "$peel_rfi" ]; then
                "$me" "${self_args[@]}" --stage refine "$1" "$2" || return 1
                "$me" "${self_args[@]}" --stage peel "$1" "$2" || return 1
            fi
        fi
        "$me" "${self_args[@]}" --stage image "$1" "$2"
    }
    for hour in "${hours[@]}"; do
        for sb in "${subband_list[@]}"; do
            [ -n "$(ms_list "$hour" "$sb")" ] || continue
            run_subband "$hour" "$sb" || { echo "run_hour: subband $sb, LST $hour failed; going on with the others" >&2
                note_state "subbands.$hour/$sb.status=failed"; }
        done
        "$here/bin/run_hour.sh" "${self_args[@]}" --stage aggregate "$hour" - || \
            echo "run_hour: aggregation of LST $hour failed" >&2
    done
    echo "$workdir"
    exit 0
fi

# ---- Slurm: Setup -> Peel array -> Image per subband (afterok); aggregation afterany -------------
jobs_dir="$workdir/jobs"; mkdir -p "$jobs_dir"
sb_opts=(--parsable)
[ -n "$partition" ] && sb_opts+=(--partition="$partition")
peel_tasks=$(plan_value peel_tasks)

resources() {  # JOB TYPE -> --cpus-per-task=N --mem=M [--time=T] [--account=A] (config cluster.jobs,
    # cluster.account; --cpus/--mem/--time/--account win)
    python3 - "$plan" "$1" "$cpus" "$mem" "$time_limit" "$account" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
job = plan.get("jobs", {}).get(sys.argv[2], {})
cpus, mem = sys.argv[3] or job.get("cpus", "2"), sys.argv[4] or job.get("mem", "8G")
limit, account = sys.argv[5] or job.get("time", ""), sys.argv[6] or plan.get("account", "")
print(f"--cpus-per-task={cpus} --mem={mem}" + (f" --time={limit}" if limit else "")
      + (f" --account={account}" if account else ""))
PY
}

job_script() {  # NAME STAGE HOUR SB -> path of a job script that runs one stage of this driver
    local f="$jobs_dir/$1.sh"
    {
        echo "#!/usr/bin/env bash"
        printf 'exec %q' "$here/bin/run_hour.sh"
        printf ' %q' "${self_args[@]}" --stage "$2" "$3" "$4"
        echo
    } > "$f"
    chmod +x "$f"
    echo "$f"
}

graph="$jobs_dir/graph.tsv"  # the job graph: name, job id, sbatch options (read by the tests)
: > "$graph"
fake_id=0
submit() {  # NAME [sbatch options...] SCRIPT -> job id (--dry-run: a made-up one, nothing submitted)
    local name=$1 id res; shift
    read -r -a res <<< "$(resources "${name%%-*}")"
    local cmd=(sbatch "${sb_opts[@]}" "${res[@]}" -J "lwa-$name" -o "$jobs_dir/$name-%A_%a.out" "$@")
    if [ "$dry_run" -eq 1 ]; then fake_id=$((fake_id + 1)); id="dry$fake_id"; else id=$("${cmd[@]}"); fi
    printf '%s\t%s\t%s\n' "$name" "$id" "${cmd[*]:1}" >> "$graph"
    echo "$id"
}

for hour in "${hours[@]}"; do
    dep_file="$workdir/$hour/image_jobs.dep"
    mkdir -p "$workdir/$hour"; : > "$dep_file"
    for sb in "${subband_list[@]}"; do
        n=$(ms_list "$hour" "$sb" | grep -c . || true)
        [ "$n" -gt 0 ] || continue
        last=""
        pin=$(placement "$sb")  # every job of the subband on its node: its working data stay there
        if [ "$resume" -eq 0 ]; then
            last=$(submit "setup-$hour-$sb" ${pin:+"$pin"} "$(job_script "setup-$hour-$sb" setup "$hour" "$sb")")
            if refine_once; then  # the peel model refined once, before the Peel array
                last=$(submit "refine-$hour-$sb" ${pin:+"$pin"} --dependency="afterok:$last" \
                    "$(job_script "refine-$hour-$sb" refine "$hour" "$sb")")
            fi
            if [ -n "$peel_sky" ] || [ -n "$peel_rfi" ]; then
                last=$(submit "peel-$hour-$sb" ${pin:+"$pin"} --array="0-$((n - 1))%${peel_tasks:-4}" --dependency="afterok:$last" \
                    "$(job_script "peel-$hour-$sb" peel "$hour" "$sb")")
            fi
        fi
        image=$(submit "image-$hour-$sb" ${pin:+"$pin"} ${last:+--dependency="afterok:$last"} \
            "$(job_script "image-$hour-$sb" image "$hour" "$sb")")
        echo "$image" >> "$dep_file"
        note_state "subbands.$hour/$sb.image_job=$image" ${last:+"subbands.$hour/$sb.previous_job=$last"}
        echo "run_hour: submitted $hour/$sb: image job $image" >&2
    done
    deps=$(paste -sd: "$dep_file")
    [ -n "$deps" ] || continue
    agg=$(submit "aggregate-$hour" --dependency="afterany:$deps" "$(job_script "aggregate-$hour" aggregate "$hour" -)")
    note_state "hours.$hour.aggregate_job=$agg"
    echo "run_hour: submitted aggregation of $hour: job $agg (after $deps)" >&2
    echo "$agg"
done
if [ "$dry_run" -eq 1 ]; then  # the job graph with its resources, as sbatch would get it
    echo "run_hour: --dry-run: nothing submitted; the job graph (name, id, sbatch options; also $graph):" >&2
    sed 's/^/  /' "$graph" >&2
fi
