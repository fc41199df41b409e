#!/usr/bin/env bash
# Create the peer environment .peers/mace-torch (git-ignored) with a CPU torch and mace-torch.
#
# torch is installed FIRST from the local CPU wheel (pip's find-links), so that installing
# mace-torch afterwards finds torch already satisfied and never pulls a CUDA build.
# The peer is only used by benchmarks/mace_torch_check.py, mace_speed.py and
# compare_mace_torch.py as a subprocess; jaxmlp never imports torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.peers/mace-torch
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null || true
echo "== installing torch==2.13.0 (CPU build) =="
"$VENV/bin/python" -m pip install --no-cache-dir "torch==2.13.0" 2>&1 | tee "$VENV/torch-install.log"
if grep -qi "nvidia\|cuda" "$VENV/torch-install.log"; then
    echo "ERROR: pip tried to install CUDA packages; aborting" >&2
    exit 1
fi
"$VENV/bin/python" - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert "+cpu" in torch.__version__ or not torch.version.cuda, torch.version.cuda
print("torch", torch.__version__, "cuda:", torch.version.cuda)
PY
echo "== installing mace-torch (torch already satisfied) =="
"$VENV/bin/python" -m pip install --no-cache-dir mace-torch "torch==2.13.0" 2>&1 | tee "$VENV/mace-install.log"
if grep -qi "nvidia" "$VENV/mace-install.log"; then
    echo "ERROR: pip pulled NVIDIA packages" >&2
    exit 1
fi
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$VENV/bin/python" -c \
    "import mace, torch, e3nn; from mace.modules import MACE; print('mace', getattr(mace, '__version__', '?'), 'e3nn', e3nn.__version__, 'torch', torch.__version__)"
du -sh "$VENV"
