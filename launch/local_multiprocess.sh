#!/usr/bin/env bash
# N processes on this machine (CPU, 2 devices each, gloo collectives), forming one global mesh: the multi-host
# code path without a cluster. Usage: launch/local_multiprocess.sh N CONFIG WORKDIR [overrides]
set -euo pipefail
N=${1:?usage: $0 N CONFIG WORKDIR [overrides]}
CONFIG=${2:?}
WORKDIR=${3:?}
shift 3
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# huge pages for the host buffers XLA maps on every call (CPU runs; see the Makefile); GLIBC_TUNABLES= turns it off
export GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
pids=()
for ((i = 0; i < N; i++)); do
  JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES=2 JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo \
  JAX_COORDINATOR_ADDRESS=127.0.0.1:$PORT JAX_NUM_PROCESSES=$N JAX_PROCESS_ID=$i \
    "$PY" -m lsta_jax.train --distributed --config "$CONFIG" --workdir "$WORKDIR" "$@" &
  pids+=($!)
done
# Ctrl-C / SIGTERM: forward ONE SIGTERM to every process (their own SIGINT is ignored, as for any background
# job of a script): they agree on a step, save a checkpoint there and exit 0 (docs/checkpoints.md)
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' INT TERM
status=0
for pid in "${pids[@]}"; do
  while true; do
    code=0
    wait "$pid" || code=$?
    # a trapped signal interrupts `wait` (status > 128) while the process still runs: wait again
    if ((code > 128)) && kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  ((code == 0)) || status=$code
done
exit $status
