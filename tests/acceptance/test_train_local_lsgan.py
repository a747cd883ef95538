"""``train-local --model lsgan``: FeGAN's 32x32 LSGAN trains, resumes and generates via the CLI."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.conftest import run_cli, train_resume_generate
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

TRAIN = ["train-local", "--dataset", "fashion-mnist", "--model", "lsgan", "--loss", "lsgan",
         "--batch-size", "8", "--seed", "3"]  # fmt: skip


def test_lsgan_train_resume_generate(workdir: Path) -> None:
    # No --model on resume: the checkpoint's architecture wins.
    first, checkpoint = train_resume_generate(workdir, TRAIN, steps=3, resumed_steps=4, tiles=2)
    assert "G 1,049,729 params, D 98,113" in first.stdout  # FeGAN's model, 1 channel, latent 100
    model_config = checkpoint["model_config"]
    assert isinstance(model_config, dict)
    assert model_config["arch"] == "lsgan" and model_config["image_size"] == 32


def test_lsgan_refuses_64x64_in_one_line(workdir: Path) -> None:
    result = run_cli([*TRAIN, "--image-size", "64", "--output-dir", "run"], workdir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "32x32" in lines[0]
