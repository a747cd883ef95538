"""``train-local`` with the huggingface section pushes to a local Hub endpoint (the real client in
the CLI's process), and ``generate --hf-repo`` draws from what landed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load

from tests.acceptance.class_harness import ClassRoom
from tests.acceptance.conftest import TINY_MODEL, cli_env
from tests.conftest import requires_fashion_mnist
from tests.hub_endpoint import LocalHub, client_env, local_hub

REPO = "class/fashion-local"
TOKEN = "hf_acceptance_secret_token"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganfriends", *args],
        cwd=cwd,
        env={**cli_env(cwd), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def train_pushing(
    hub: LocalHub, workdir: Path, steps: int, **env: str
) -> subprocess.CompletedProcess[str]:
    """``train-local`` of the tiny model for ``steps`` steps into ``run``, pushing to ``hub``."""
    trained = run(
        ["train-local", "--dataset", "fashion-mnist", "--batch-size", "16", "--max-steps",
         str(steps), "--output-dir", "run", *TINY_MODEL],
        workdir,
        {**client_env(hub, workdir / "hf_home"), "GANFRIENDS_HUGGINGFACE_ENABLED": "true",
         "GANFRIENDS_HUGGINGFACE_REPO_ID": REPO, **env},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    return trained


@requires_fashion_mnist
def test_train_local_pushes_and_generate_draws_from_the_push(workdir: Path) -> None:
    with local_hub() as hub:
        # The config's secret, in the environment: masked when stored.
        trained = train_pushing(hub, workdir, 3, GANFRIENDS_HUGGINGFACE_TOKEN=TOKEN)
        assert f"Hugging Face: pushing to {REPO} at {hub.url}" in trained.stdout
        assert "1 push(es)" in trained.stdout and "the last at step 3" in trained.stdout

        files = hub.state.files(REPO)
        assert len(hub.state.commits[REPO]) == 1  # one commit for the whole push
        meta = json.loads(files["metadata.json"])
        assert (meta["step"], meta["images_seen"], meta["source"]) == (3, 48, "train-local")
        assert meta["model_config"]["g_features"] == 8 and meta["dataset"] == "fashion-mnist"
        assert set(meta["losses"]) == {"d_loss", "g_loss", "d_real", "d_fake"}
        assert load(files["generator.safetensors"])["main.0.weight"].shape[0] == 16
        assert files["samples/latest.png"] == (workdir / "run/samples/latest.png").read_bytes()
        with Image.open(io.BytesIO(files["samples/latest.png"])) as grid:
            assert grid.size == (2 + 8 * 34, 2 + 8 * 34)  # 64 images of 32 px
        assert "curves.png" in files and files["README.md"].startswith(b"---\n")
        # The token went to the Hub in headers only: never printed, pushed or checkpointed.
        assert set(hub.state.authorizations) == {f"Bearer {TOKEN}"}
        assert TOKEN not in trained.stdout + trained.stderr
        assert not any(TOKEN.encode() in content for content in files.values())
        assert TOKEN.encode() not in (workdir / "run/checkpoints/latest.pt").read_bytes()

        assert b"***" in (workdir / "run/checkpoints/latest.pt").read_bytes()

        reader = {**client_env(hub, workdir / "hf_home_reader"), "HF_TOKEN": TOKEN}
        drawn = run(["generate", "--hf-repo", REPO, "--num", "16", "--out", "hub.png",
                     "--device", "cpu"], workdir, reader)  # fmt: skip
        assert drawn.returncode == 0, drawn.stderr
        assert f"wrote 16 images from {REPO} at {hub.url}" in drawn.stdout
        with Image.open(workdir / "hub.png") as image:
            assert image.size == (2 + 4 * 34, 2 + 4 * 34)  # 4x4 images of 32 px

        missing = run(["generate", "--hf-repo", "class/none", "--out", "x.png"], workdir, reader)
        assert missing.returncode == 1
        assert missing.stderr.strip().count("\n") == 0, missing.stderr
        assert "class/none" in missing.stderr and "not found" in missing.stderr


@requires_fashion_mnist
def test_the_demo_notebook_reads_a_hugging_face_repo(workdir: Path) -> None:
    from tests.acceptance.test_notebooks import execute, images

    with local_hub() as hub:
        train_pushing(hub, workdir, 2)

        notebook = execute(
            "demo_trained_model.ipynb",
            "INSTALL = False",
            workdir,
            {**client_env(hub, workdir / "hf_home_notebook"), "HF_REPO_ID": REPO,
             "GANFRIENDS_DATABASE_URL": ""},
        )  # fmt: skip

    # Curves (from the pushed loss points), samples, progression, random samples, interpolation.
    assert images(notebook) == 5
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert f"Hugging Face repo {REPO} at {hub.url} (train-local)" in text and "step 2" in text


@requires_fashion_mnist
def test_the_coordinator_pushes_a_class_run(
    room: ClassRoom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_hub() as hub:
        for name, value in client_env(hub, tmp_path / "hf_home").items():
            monkeypatch.setenv(name, value)  # the room's processes inherit them
        # ./config.yaml: the workers read it too, and must neither push nor mind it.
        (room.workdir / "config.yaml").write_text(
            f"huggingface:\n  enabled: true\n  repo_id: {REPO}\n  push_interval: 2\n"
            f"  endpoint: {hub.url}\n",
            encoding="utf-8",
        )
        coordinator, worker = room.small_run(3, "--sample-interval", "1")

        # Grids at versions 1, 2, 3: version 2 is pushed, then 3, the last, at the end.
        assert "Hugging Face: 2 push(es)" in coordinator.output, coordinator.output
        assert [c.summary for c in hub.state.commits[REPO]] == [
            "ganfriends: step 2",
            "ganfriends: step 3",
        ]
        meta = json.loads(hub.state.files(REPO)["metadata.json"])
        assert meta["step"] == 3 and meta["source"].startswith("class run ")
        assert set(meta["losses"]) == {"d_loss", "g_loss", "d_real", "d_fake"}
        assert "Hugging Face" not in worker.output
