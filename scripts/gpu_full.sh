#!/usr/bin/env bash
# On the GPU machine (the `device` tool runs this in the repo root; .whl/ carried, see scripts/gpu_wheels.sh):
# install the wheels, then run each named lesson notebook in full mode, writing the executed notebooks (with
# their outputs) and a log to $OUT. Then, here: copy a notebook from the returned files over nbs/, run
# `nbdev-clean`, check that its prose names the data, mode and device, and commit.
# Usage: bash scripts/gpu_full.sh 02_unet_superres [03_perceptual_loss ...]
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
for nb in "$@"; do
  /usr/bin/time -f "$nb: %e s wall" python3 -c 'import sys; from imgcourse.run import lesson; lesson()' "$nb" --full --out "$OUT" 2>&1 | tee -a "$OUT/full.log"
done
