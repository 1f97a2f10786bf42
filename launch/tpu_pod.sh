#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same command on every worker at once; jax.distributed.initialize() detects the
# pod. The repository (with its .venv built for TPU: pip install 'jax[tpu]' matching requirements.lock) must
# be at the same path on every worker, and WORKDIR on storage they all see (e.g. a gcsfuse mount).
# Usage: TPU_NAME=... ZONE=... [PROJECT=...] launch/tpu_pod.sh CONFIG WORKDIR [--config.field=value ...]
set -euo pipefail
CONFIG=${1:?usage: $0 CONFIG WORKDIR [overrides]}
WORKDIR=${2:?usage: $0 CONFIG WORKDIR [overrides]}
shift 2
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" ${PROJECT:+--project "$PROJECT"} --worker=all \
  --command "cd $REPO && .venv/bin/python -m lsta_jax.train --distributed --config $CONFIG --workdir $WORKDIR $*"
