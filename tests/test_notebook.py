"""The quick-start notebook runs top to bottom (with the debug overlay's budgets), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The dev extras install these; a missing one is a failure, not a skip.
    import ipykernel  # noqa: F401
    import nbclient
    import nbformat

    # The kernel inherits this environment: tiny budgets, no W&B.
    monkeypatch.setenv("METARL_QUICKSTART_FAST", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    run_dir = tmp_path / "runs" / "quickstart"
    assert list(run_dir.rglob("last.ckpt")), "the notebook's run wrote no checkpoint"
    for name in ("returns.png", "adaptation.png"):
        assert list(run_dir.rglob(name)), f"the notebook wrote no {name}"
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert "mean over 1 task(s): before" in "".join(o.get("text", "") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the lambda / beta figure and the plot command's PNGs
