#!/usr/bin/env bash
# Download the pure-Python wheels that the GPU machine lacks into .whl/ (ignored by git), so that a device run
# can install them offline. Versions are those of this project's dev venv, except fastprogress: 1.1 pulls in
# python-fasthtml, so the machine gets 1.0.3, which fastai 2.8 accepts.
# Usage (in the repo root, with the dev venv active): bash scripts/gpu_wheels.sh
set -euo pipefail
names="fastai fastcore fasttransform fastdownload plum-dispatch beartype execnb ipython ipython-pygments-lexers
       jedi parso matplotlib-inline pexpect ptyprocess prompt_toolkit wcwidth stack-data executing asttokens pure-eval
       traitlets mlxtend"
mkdir -p .whl
pins=$(for n in $names; do pip show "$n" 2>/dev/null | awk -v n="$n" '/^Version:/{print n"=="$2}'; done)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl $pins fastprogress==1.0.3
ls .whl
du -sh .whl
