#!/usr/bin/env bash
# On the GPU machine (the `device` tool runs this in the repo root; .whl/ carried, see scripts/gpu_wheels.sh):
# install the wheels, then run each named lesson notebook in full mode, writing the executed notebooks (with
# their outputs), one log, the device's name and each lesson's wall time (times.txt: name, seconds, exit status) to $OUT. The machine has no internet:
# IMGCOURSE_OFFLINE=1 (unless set), so the lessons take the shipped data and random initialisation at once, and say so.
# Then, here: `python scripts/keep_full.py DIR` stamps the returned notebooks and files them under docs/full/.
#
# Usage: bash scripts/gpu_full.sh [--parallel] [--limit SECS] 02_unet_superres [03_perceptual_loss ...]
#   --parallel  every lesson at once, each in its own process on its own share of the CPU cores, sharing the GPU
#   --limit     stop each lesson after SECS seconds; the notebook up to the cell it reached is kept
set -o pipefail
parallel=0 limit=0
while [[ $1 == --* ]]; do
  case $1 in
    --parallel) parallel=1; shift;;
    --limit) [[ $2 =~ ^[0-9]+$ ]] || { echo "--limit needs a whole number of seconds, not '${2:-}'" >&2; exit 2; }; limit=$2; shift 2;;
    *) echo "unknown option $1 (use --parallel, --limit SECS)" >&2; exit 2;;
  esac
done
(( $# )) || { echo "name at least one lesson, e.g. 01_resnet_mnist" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out} IMGCOURSE_OFFLINE=${IMGCOURSE_OFFLINE:-1}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c 'import torch, fastai; print("torch", torch.__version__, "fastai", fastai.__version__)' | tee -a "$OUT/device.txt"
echo "date $(date -u +%F)" >> "$OUT/device.txt"
# `imgcourse-lesson` is a console script, which --target does not install; a file that calls it works the same
printf 'import sys\nfrom imgcourse.run import lesson\nsys.exit(lesson())\n' > /tmp/imgcourse-lesson.py
ncores=$(nproc); n=$#; i=0
one() {  # lesson name, its index
  local nb=$1 k=$2 cores="" t0=$SECONDS rc
  if (( parallel )) && command -v taskset >/dev/null; then
    local per=$(( ncores / n > 0 ? ncores / n : 1 ))
    cores="taskset -c $(( k*per % ncores ))-$(( (k*per % ncores) + per - 1 ))"
  fi
  local stop=""; (( limit > 0 )) && stop="timeout -s TERM -k 30 $limit"
  IMGCOURSE_CACHE=/tmp/cache-$nb $stop $cores python3 /tmp/imgcourse-lesson.py "$nb" --full --out "$OUT" >"$OUT/$nb.log" 2>&1
  rc=$?
  echo "$nb $(( SECONDS - t0 )) $rc" >> "$OUT/times.txt"
  echo "$nb: rc $rc after $(( SECONDS - t0 )) s"
}
for nb in "$@"; do
  if (( parallel )); then one "$nb" $i & else one "$nb" $i; fi
  i=$((i+1))
done
wait
# one log for all (the device tool brings back at most 8 files): each lesson's output, then the wall times
for nb in "$@"; do echo "=== $nb"; cat "$OUT/$nb.log"; rm -f "$OUT/$nb.log"; done > "$OUT/full.log"
rm -f "$OUT"/.*.part  # a lesson killed while saving leaves its temporary file
cat "$OUT/times.txt" | tee -a "$OUT/full.log"
