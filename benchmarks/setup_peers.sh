#!/usr/bin/env bash
# Create the JAX peer environments used by benchmarks/nequip_speed.py (all git-ignored):
#   .peers/jax-md : jax-md's own NequIP (jax_md.energy.nequip_neighbor_list)
#   .peers/mlip   : InstaDeep's mlip (NequIP / MACE in JAX)
# Each peer lives in its own venv and runs as a subprocess (benchmarks/peers/*.py), so
# nothing it installs can change jaxmlp's environment.
# jax/jaxlib 0.10.2 miscompile on Linux x86-64 CPU: it is excluded everywhere.
# Usage: bash benchmarks/setup_peers.sh [jax-md] [mlip]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PEERS=("$@")
[ ${#PEERS[@]} -eq 0 ] && PEERS=(jax-md mlip)

make_venv() {
    local venv=$1
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null || true
}

for peer in "${PEERS[@]}"; do
    case "$peer" in
    jax-md)
        VENV=.peers/jax-md
        make_venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet \
            "jax==0.10.1" "jaxlib==0.10.1" "jax-md==0.2.29" e3nn-jax ml_collections jraph \
            flax numpy ase
        "$VENV/bin/python" -c \
            "import jax, jax_md, e3nn_jax; from jax_md import energy; energy.nequip_neighbor_list; import importlib.metadata as m; print('jax', jax.__version__, 'jax-md', m.version('jax-md'), 'e3nn-jax', e3nn_jax.__version__)"
        ;;
    mlip)
        VENV=.peers/mlip
        make_venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet mlip "jax!=0.10.2" "jaxlib!=0.10.2" ase
        "$VENV/bin/python" -c \
            "import jax, mlip; from mlip.models import Nequip; print('jax', jax.__version__, 'mlip', getattr(mlip, '__version__', '?'))"
        ;;
    *)
        echo "unknown peer $peer (choose jax-md, mlip)" >&2
        exit 2
        ;;
    esac
done
