"""Each notebook executes top to bottom (in its tiny QUICK mode), from its own folder."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # long end-to-end / sampling tests

NOTEBOOKS = pathlib.Path(__file__).parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "01_quickstart.ipynb"


def execute(path, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXMLP_QUICK", "1")
    monkeypatch.setenv("JAXMLP_WORKDIR", str(tmp_path / "work"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    outputs = execute(NOTEBOOK, tmp_path, monkeypatch)
    assert "forces" in outputs and "meV/Å" in outputs
    assert os.path.isfile(tmp_path / "work" / "run" / "model.jaxmlp")


def test_model_family_notebook_executes(tmp_path, monkeypatch):
    outputs = execute(NOTEBOOKS / "02_model_family.ipynb", tmp_path, monkeypatch)
    for name in ("bp", "schnet", "painn", "nequip"):
        assert f"{name}:" in outputs and "cheaper than xTB" in outputs
    assert os.path.getsize(tmp_path / "work" / "error_vs_cost.png") > 10_000


def test_active_learning_notebook_executes(tmp_path, monkeypatch):
    outputs = execute(NOTEBOOKS / "03_active_learning.ipynb", tmp_path, monkeypatch)
    for method in ("uncertainty", "random"):
        assert f"{method}: final test force MAE" in outputs
    assert "rank correlation of spread and error" in outputs
    assert os.path.getsize(tmp_path / "work" / "learning_curves.png") > 10_000
