"""notebooks/farol.ipynb: committed clean, and executed top to bottom by a real Jupyter kernel."""

import base64
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "farol.ipynb"
# A folder to keep the executed notebook and its MONITORING chart in, when set (to look at).
KEEP = os.environ.get("FAROL_NOTEBOOK_OUT")


def test_committed_notebook_has_no_outputs_or_execution_counts():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert dirty == [], f"cells {dirty} carry outputs; clear them before committing"


def test_code_cells_call_farol_and_hold_no_functions_of_their_own():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "def " not in code and "class " not in code and "lambda" not in code


def _with_parameters(nb, **values):
    """The notebook with a cell after the parameters cell that overrides them (papermill's
    way), so the test runs what users run, only smaller and in a temporary folder."""
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"{k} = {v!r}" if not isinstance(v, Path) else f"{k} = Path({str(v)!r})"
             for k, v in values.items()]
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(lines)))
    return nb


def _monitor_png(nb) -> bytes | None:
    for cell in nb.cells:
        if cell.cell_type == "code" and "live.charts" in cell.source:
            for out in cell.outputs:
                if "image/png" in out.get("data", {}):
                    return base64.b64decode(out["data"]["image/png"])
    return None


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_the_tiny_model(tmp_path, tiny_model, tiny_4bit):
    nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), TINY=tiny_model,
                          MODEL=tiny_4bit, DATA=tmp_path / "processed", RUNS=tmp_path / "runs",
                          CONFIG_FILE=tmp_path / "notebook.yaml", ITERS=30,
                          INTERACTIVE=False, MAX_TOKENS=8)
    # Any cell error raises CellExecutionError here, naming the cell and the traceback.
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    run = tmp_path / "runs" / "notebook"
    assert (run / "adapters.safetensors").is_file() and (run / "summary.html").is_file()
    png = _monitor_png(nb)
    assert png and png.startswith(b"\x89PNG"), "MONITORING drew no chart"
    analysis = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "improvement:" in analysis and "overfitting check:" in analysis
    if KEEP:
        Path(KEEP, "monitor.png").write_bytes(png)
        nbformat.write(nb, Path(KEEP, "farol-executed.ipynb"))
