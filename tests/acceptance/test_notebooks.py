"""The notebooks run top to bottom (nbclient, a real kernel), install cell skipped by parameter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from tests.acceptance.class_harness import ClassRoom
from tests.acceptance.conftest import TINY_MODEL, run_cli
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"


def execute(name: str, parameters: str, cwd: Path, env: dict[str, str]) -> Any:
    """Run a notebook with ``parameters`` injected after its parameters cell, as papermill does."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = next(
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    )
    notebook.cells.insert(tagged + 1, nbformat.v4.new_code_cell(parameters))
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env={**os.environ, **env})
    return notebook


def printed(notebook: Any) -> str:
    """Everything the cells printed: streams, and rich's output (display data in Jupyter)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def images(notebook: Any) -> int:
    return sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )


def test_the_demo_notebook_shows_a_local_run(workdir: Path) -> None:
    local = ["train-local", "--dataset", "fashion-mnist", "--batch-size", "16", "--max-steps", "4"]
    trained = run_cli([*local, "--output-dir", "run", *TINY_MODEL], workdir)
    assert trained.returncode == 0, trained.stderr
    checkpoint = workdir / "run" / "checkpoints" / "latest.pt"

    notebook = execute(
        "demo_trained_model.ipynb",
        f"INSTALL = False\nCHECKPOINT = {str(checkpoint)!r}",
        workdir,
        {"GANFRIENDS_DATABASE_URL": ""},
    )

    # Curves, samples, progression, random samples, interpolation.
    assert images(notebook) == 5
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert f"checkpoint {checkpoint}" in text and "step 4" in text


def test_the_demo_notebook_reads_a_class_database(room: ClassRoom, tmp_path: Path) -> None:
    room.small_run(2, "--sample-interval", "1")

    notebook = execute(
        "demo_trained_model.ipynb",
        "INSTALL = False",
        tmp_path,
        {"GANFRIENDS_DATABASE_URL": room.db_url},
    )

    assert images(notebook) == 5
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "version 4" in text  # 2 alternating steps, a D and a G version each


def test_the_colab_worker_notebook_trains_for_the_class(room: ClassRoom, tmp_path: Path) -> None:
    coordinator = room.coordinator(
        "run", "--max-iterations", "2", "--images-per-work-unit", "64",
        "--workunits-per-update", "2", "--micro-batch", "32",
    )  # fmt: skip
    coordinator.wait_for("new run")

    notebook = execute(
        "worker_colab.ipynb",
        f"INSTALL = False\nNAME = 'colab'\nDATABASE_URL = {room.db_url!r}\nDEVICE = 'cpu'",
        tmp_path,
        room.env(),
    )

    assert coordinator.finish() == 0, coordinator.output
    text = printed(notebook)
    assert "completed successfully" in text
    assert "8 unit(s) done (run 1 is complete)" in text  # 2 steps x 2 units x (D, G)
    assert "colab" in text.split("unit(s) done")[1]  # on the leaderboard printed after
    assert room.db_url not in text  # the URL is never shown
