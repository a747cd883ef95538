"""``train-local --model lsgan``: FeGAN's 32x32 LSGAN trains, resumes and generates via the CLI."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from tests.acceptance.conftest import run_cli
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

TRAIN = [
    "train-local",
    "--dataset",
    "fashion-mnist",
    "--model",
    "lsgan",
    "--loss",
    "lsgan",
    "--batch-size",
    "8",
    "--seed",
    "3",
]


def load(path: Path) -> dict[str, object]:
    data: dict[str, object] = torch.load(path, weights_only=True)
    return data


def test_lsgan_train_resume_generate(workdir: Path) -> None:
    first = run_cli([*TRAIN, "--output-dir", "run", "--max-steps", "3"], workdir)
    assert first.returncode == 0, first.stderr
    assert "G 1,049,729 params, D 98,113" in first.stdout  # FeGAN's model, 1 channel, latent 100
    latest = workdir / "run" / "checkpoints" / "latest.pt"
    checkpoint = load(latest)
    assert checkpoint["step"] == 3
    model_config = checkpoint["model_config"]
    assert isinstance(model_config, dict)
    assert model_config["arch"] == "lsgan" and model_config["image_size"] == 32

    # No --model on resume: the checkpoint's architecture wins.
    resumed = run_cli(
        ["train-local", "--resume", str(latest), "--output-dir", "run", "--max-steps", "4"], workdir
    )
    assert resumed.returncode == 0, resumed.stderr
    assert load(latest)["step"] == 4

    generated = run_cli(
        ["generate", "--checkpoint", str(latest), "--num", "4", "--out", "grid.png"], workdir
    )
    assert generated.returncode == 0, generated.stderr
    with Image.open(workdir / "grid.png") as grid:
        assert grid.size == (2 + 2 * 34, 2 + 2 * 34)  # 2x2 tiles of 32 px + 2 px padding


def test_lsgan_refuses_64x64_in_one_line(workdir: Path) -> None:
    result = run_cli([*TRAIN, "--image-size", "64", "--output-dir", "run"], workdir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "32x32" in lines[0]
