"""Every notebook runs top to bottom against the sample data, and draws its Plotly figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_traffic.ipynb",
        "02_detector_lab.ipynb",
        "03_capacity_forecast.ipynb",
        "04_llm_cost.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_plots(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    # Committed without outputs: what a reader downloads is the code, not stale results.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if PLOTLY in o.get("data", {})]
    assert figures, "no Plotly figure was drawn"
    for fig in figures:
        traces = fig["data"][PLOTLY]["data"]
        assert traces and any(len(t.get("x", [])) > 0 for t in traces), "an empty figure"
