#!/usr/bin/env bash
# The test command (README "Quick start", also run by CI through .ci/run):
# sets up the environment, builds the CI-mode corpus, runs unit/parity tests, the docstring examples of
# the package (--doctest-modules on ttslab/; it also scans tests/, which has none, while nbval alone
# collects notebooks/, which holds no .py files) and nbval over every notebook in CI mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export TTSLAB_CI=1 MPLBACKEND=Agg PYTHONHASHSEED=0
# one BLAS thread: small matrix products are much slower with two on a 2-core machine
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export TTSLAB_DATA=${TTSLAB_DATA:-$HOME/.cache/ttslab}
.venv/bin/python -m ttslab build-corpus --mode ci
exec .venv/bin/python -m pytest tests notebooks ttslab --doctest-modules \
  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider "$@"
