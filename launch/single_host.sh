#!/usr/bin/env bash
# One host, all local GPUs (or TPU cores): a single process; JAX sees every local device and the train step is
# sharded over them on the 'data' axis.
# Usage: launch/single_host.sh CONFIG WORKDIR [--config.field=value ...]
set -euo pipefail
CONFIG=${1:?usage: $0 CONFIG WORKDIR [overrides]}
WORKDIR=${2:?usage: $0 CONFIG WORKDIR [overrides]}
shift 2
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# huge pages for the host buffers XLA maps on every call (CPU runs; see the Makefile); GLIBC_TUNABLES= turns it off
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}
# Let XLA use most of the GPU memory without grabbing it all up front.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
exec "$PY" -m lsta_jax.train --config "$CONFIG" --workdir "$WORKDIR" "$@"
