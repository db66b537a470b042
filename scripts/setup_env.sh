#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install ttslab with the tested pins.
# Usage: source-free; prints the python path it set up. VENV overrides the location (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "ttslab needs Python >= 3.11"'
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.ttslab-installed"
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing ttslab and its pinned dependencies (constraints.txt) into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "setuptools==80.10.2"
  # torch first, alone: its pin keeps pip from pulling a multi-GB CUDA build through another package
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,notebooks,federated,serving,privacy,export]"
  echo "$want" > "$stamp"
fi
"$VENV/bin/python" -c 'import ttslab, torch, librosa; print(f"== ttslab {ttslab.__version__}, torch {torch.__version__}, librosa {librosa.__version__}")'
