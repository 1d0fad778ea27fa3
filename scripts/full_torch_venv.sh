#!/usr/bin/env bash
# llm_trainer: the optional full-torch environment (torch 2.14.1 + torchvision 0.29.1, ~5.5 GB) for what
# the lean project venv cannot run: Molmo2's image processor needs torchvision. It holds only the
# perception model backends' dependencies (no ROS), and runs their tests from the checkout:
#
#   bash scripts/full_torch_venv.sh            # build <repo>/.venv-full (idempotent; ~2 min here from pip's cache)
#   make test-full-torch                       # then: the perception model tests, Molmo2 included
#
# Environment: FULL_VENV (default <repo>/.venv-full), PYTHON (default python3.11, else python3).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FULL_VENV:-$REPO/.venv-full}"
if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
RECIPE="torch==2.14.1 torchvision==0.29.1 | transformers==5.23.0 scipy numpy pillow opencv-python-headless pyyaml pytest"
STAMP="$VENV/full_torch_venv.stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] && "$VENV/bin/python" -c "import torchvision, transformers" 2>/dev/null; then
    echo "==> [full_torch_venv] $VENV is up to date"
    exit 0
fi
start=$(date +%s)
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# torch first, alone: anything else would pull its own (CUDA) torch.
"$VENV/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
"$VENV/bin/pip" install -q "transformers==5.23.0" scipy numpy pillow opencv-python-headless pyyaml pytest
"$VENV/bin/python" -c "import torch, torchvision, transformers; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
echo "$RECIPE" > "$STAMP"
echo "==> [full_torch_venv] built $VENV in $(( $(date +%s) - start )) s"
