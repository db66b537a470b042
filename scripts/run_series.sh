#!/usr/bin/env bash
# The main job (README "Quick start"): set up the environment, build the built-in corpus and
# execute every notebook in order. Full mode by default; TTSLAB_CI=1 for the small CI mode.
# Executed copies and a summary go to results/<mode>/; with --in-place the notebooks that ran
# without error are also written back to notebooks/ (tidied: final progress bars, Ogg audio).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MPLBACKEND=Agg PYTHONHASHSEED=0
# one BLAS thread: small matrix products are much slower with two on a 2-core machine
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export TTSLAB_DATA=${TTSLAB_DATA:-$HOME/.cache/ttslab}
mode=full; [ "${TTSLAB_CI:-}" = "1" ] && mode=ci
.venv/bin/python -m ttslab build-corpus --mode "$mode"
exec .venv/bin/python scripts/run_notebooks.py --mode "$mode" "$@"
