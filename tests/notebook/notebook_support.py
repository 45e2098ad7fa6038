"""Execute a real notebook on a real kernel from this venv, offline, and read the ledger.

The kernelspec is written into a temporary Jupyter path (nothing is installed for the
user); the kernel inherits the test's environment (its project, region, settings) and
starts in the project, as Jupyter starts a kernel in the notebook's folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="the dev extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the dev extra installs nbclient")
pytest.importorskip("ipykernel", reason="the dev extra installs ipykernel")

KERNEL = "wattwise-test"


def use_test_kernel(monkeypatch: pytest.MonkeyPatch, where: Path) -> None:
    """A kernelspec for this interpreter under ``where``, and Jupyter's folders there too."""
    spec = where / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "wattwise tests", "language": "python",
    }))  # fmt: skip
    monkeypatch.setenv("JUPYTER_PATH", str(where / "jupyter"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(where / "jupyter-config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(where / "jupyter-runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(where / "ipython"))
    monkeypatch.setenv("WATTWISE_INTERVAL_S", "0.1")
    monkeypatch.setenv("WATTWISE_FLUSH_S", "0.3")


def write_notebook(path: Path, cells: Sequence[str]) -> Any:
    """A notebook of code cells, saved at ``path``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "wattwise tests",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, path)
    return nb


def execute(path: Path, *, allow_errors: bool = False) -> Any:
    """Run every cell of the notebook at ``path`` on the test kernel, in its folder; return
    it with its outputs. A cell that raises stops it (``CellExecutionError``), as "Run all"
    stops in Jupyter, unless ``allow_errors``."""
    nb = nbformat.read(path, as_version=4)
    folder = {"metadata": {"path": str(path.parent)}}
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=120, allow_errors=allow_errors, resources=folder
    )
    client.execute()
    return nb


def outputs(cell: Any, kind: str) -> list[str]:
    """The texts of a cell's outputs of one kind: ``text/html``, ``text/plain``, ``stream``."""
    found = []
    for out in cell.outputs:
        if kind == "stream" and out.get("output_type") == "stream":
            found.append(out["text"])
        elif kind in out.get("data", {}):
            found.append(out["data"][kind])
    return found
