#!/usr/bin/env bash
# Set up jaxgen on a fresh machine: a virtual environment in .venv with jaxgen and its test
# tools, and (as root, when missing) Debian's Fashion-MNIST files. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FMNIST" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's dataset-fashion-mnist (offline Fashion-MNIST)..."
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null \
      || echo "warning: could not install dataset-fashion-mnist; the experiments will say how to get the data" >&2
  else
    echo "note: Fashion-MNIST files missing; run 'apt-get install dataset-fashion-mnist' as root" >&2
  fi
fi
echo "jaxgen is set up in .venv ($(.venv/bin/python -c 'import jax; print("jax", jax.__version__)'))"
