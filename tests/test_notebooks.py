"""Every notebook runs top to bottom in quick mode (QWT_QUICK=1), so none can rot."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: The simulator tour runs by default; the paper reproductions (minutes each) are ``slow``.
QUICK = {"01_simulator_tour"}


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should hold the simulator tour and the paper reproductions"


@pytest.mark.parametrize("path", [
    pytest.param(p, id=p.stem, marks=() if p.stem in QUICK else pytest.mark.slow) for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("QWT_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("QWT_CACHE_DIR", str(tmp_path / "cache"))
    # The kernel must not inherit pytest's "warnings are errors" or rank-promotion settings.
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
