#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine with Python 3.11: system packages, the virtualenv
# .venv with the project and its test tools, and pycaffe (built once, cached under ~/.cache).
#   scripts/bootstrap.sh            everything
#   scripts/bootstrap.sh --no-caffe skip the pycaffe build (the caffe tests and `profile caffe` then say so)
set -euo pipefail
cd "$(dirname "$0")/.."

caffe=1
for arg in "$@"; do
  case "$arg" in
    --no-caffe) caffe=0 ;;
    *) echo "bootstrap: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
step() { printf 'bootstrap: %s\n' "$*"; }

if ! "$PY" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing python3, python3-venv, python3-dev with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv python3-dev >/dev/null
  else
    echo "bootstrap: error: need Python >= 3.10 with venv (apt-get install python3-venv python3-dev)" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
step "installing the project, its test tools and its checkers into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e '.[dev,check,caffe,nvml]'

step "installing torch 2.13 (optional: the PyTorch adapter and its tests)"
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt torch==2.13.0 \
  || step "torch not installed: the PyTorch adapter tests will skip"

step "installing onnxruntime and onnx (optional: profile onnx and its tests)"
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e '.[onnx]' \
  || step "onnxruntime not installed: profile onnx and its tests will skip"

if [ "$caffe" = 1 ]; then
  bash scripts/build-pycaffe.sh .venv/bin/python
fi
step "ready: .venv/bin/streamline-bridge --help"
