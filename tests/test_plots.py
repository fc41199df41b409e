"""Plots never switch the caller's matplotlib backend (a notebook's inline one)."""

import subprocess
import sys

SCRIPT = r"""
import sys
import matplotlib
matplotlib.use("svg")  # stands in for a notebook's backend
import numpy as np
from jaxmlp import plots
from jaxmlp.md import analysis
out = sys.argv[1]
rng = np.random.default_rng(0)
e, f = rng.normal(size=8), rng.normal(size=(8, 3))
plots.parity_plot({"energy_ref": e, "energy_pred": e + 0.01, "forces_ref": f,
                   "forces_pred": f + 0.01}, out + "/parity.png")
plots.traces_plot(np.arange(5.0), {"T (K)": np.arange(5.0)}, out + "/traces.png")
thermo = {k: np.arange(5.0) for k in ("time_ps", "T_K", "Epot_eV", "Etot_eV", "conserved_eV")}
analysis.plot_thermo(thermo, out + "/thermo.png", 300.0)
print(matplotlib.get_backend())
"""


def test_plots_leave_the_backend_alone(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().lower() == "svg"
    for name in ("parity", "traces", "thermo"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
