#!/usr/bin/env bash
# One-time (idempotent) set-up on Debian 12: system tools from Debian, a venv with every
# lwa-pipe package installed editable. Safe to rerun; quick when everything is present.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
apt_pkgs=(wsclean aoflagger casacore-tools casacore-data ffmpeg python3-venv chromium time)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
pkgs=(-e common)
for t in tools/*/; do pkgs+=(-e "$t"); done
.venv/bin/python -m pip install -q "${pkgs[@]}" pytest pytest-timeout hypothesis ruff uv >&2
echo "setup: ok ($(.venv/bin/python --version), wsclean $(wsclean -version 2>/dev/null | grep -o 'version [0-9.]*' | head -1))" >&2
