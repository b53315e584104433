#!/usr/bin/env bash
# Trains SegForge's starter vessel network on domain-randomised synthetic vessel trees only
# (no patient data), reproducibly: a fixed seed and this config, torch on one CPU thread. CPU by
# default (about 5 minutes on the project's 2-core machine, docs/training.md); add
# `--device cuda` on a GPU. Re-running with --resume goes on from the checkpoint in OUT. The
# model, its SHA-256 and training record land in OUT/segforge-vessel-starter/ and
# OUT/catalog.json only when the run finished and validated.
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${1:-out/starter-vessel}
shift || true
exec "$(dirname "$0")/../.venv/bin/segforge" train vessel \
  --synthetic 48 --synthetic-size-mm 64 \
  --steps 2000 --patch 48 48 48 --batch-size 2 --channels 8 16 32 64 \
  --learning-rate 0.001 --skeleton-recall-weight 0.5 \
  --validate-every 1000 --checkpoint-every 100 --min-dice 0.5 --seed 20261207 \
  --out "$OUT" --model-id segforge-vessel-starter "$@"
