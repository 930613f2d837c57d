"""Lecture 06 on a machine without network and without MNIST: it runs top to bottom on the offline sample."""

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

LECTURE = ROOT / "lectures" / "06_mnist_gpu.ipynb"
NO_NETWORK = "http://127.0.0.1:9"  # urllib sends every download through this proxy: the discard port refuses at once


@pytest.mark.lecture
def test_lecture06_runs_on_the_offline_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_ROOT", str(tmp_path / "empty data root"))  # the kernel inherits the environment
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, NO_NETWORK)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(LECTURE, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(LECTURE.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert printed.count("NOTICE: full MNIST is not available") == 1, "the fallback notice should be printed once"
    assert "5,000 real MNIST digits" in printed and "will differ" in printed
    assert "train: (4000, 28, 28)" in printed  # the sample, not full MNIST
