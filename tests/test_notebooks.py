"""The quick-start notebook executes top to bottom (in its tiny QUICK mode)."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # long end-to-end / sampling tests

NOTEBOOK = pathlib.Path(__file__).parents[1] / "notebooks" / "01_quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXMLP_QUICK", "1")
    monkeypatch.setenv("JAXMLP_WORKDIR", str(tmp_path / "work"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "forces" in outputs and "meV/Å" in outputs
    assert os.path.isfile(tmp_path / "work" / "run" / "model.jaxmlp")
