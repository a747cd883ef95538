from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganfriends.errors import CheckpointError
from ganfriends.models import ModelConfig, build_models
from ganfriends.step import make_optimizers
from ganfriends.training.checkpoint import (
    REQUIRED_KEYS,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)

CONFIG = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)


def write_checkpoint(path: Path) -> Path:
    generator, discriminator = build_models(CONFIG, seed=0)
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    return save_checkpoint(
        path,
        generator=generator,
        discriminator=discriminator,
        optimizer_g=opt_g,
        optimizer_d=opt_d,
        epoch=1,
        step=10,
        images_seen=640,
        model_config=CONFIG,
        run_config={"training": {"seed": 0}},
    )


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    data = torch.load(write_checkpoint(tmp_path / "c.pt"), weights_only=True)
    assert set(REQUIRED_KEYS) <= set(data)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    checkpoint = load_checkpoint(write_checkpoint(tmp_path / "c.pt"))
    assert (checkpoint.step, checkpoint.epoch, checkpoint.images_seen) == (10, 1, 640)
    assert checkpoint.model_config == CONFIG
    generator = checkpoint.build_generator()
    assert generator(torch.randn(2, 8)).shape == (2, 1, 32, 32)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"payload": Path("/etc/passwd")}, path)  # an arbitrary class: needs full unpickling
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_a_tensor_dict_without_our_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_an_old_train_local_checkpoint_resumes_with_its_own_micro_batch() -> None:
    # Written before micro_batch moved from `local` to `training`: training.micro_batch was then
    # the class units' 64, and local.micro_batch the one the run trained with.
    from rich.console import Console

    from ganfriends.config import Config
    from ganfriends.training.local import _adopt_checkpoint_settings

    old = {"training": {"seed": 0, "micro_batch": 64}, "local": {"micro_batch": 4}}
    checkpoint = Checkpoint({}, {}, {}, {}, 1, 10, 640, CONFIG, old)
    config = Config()
    _adopt_checkpoint_settings(config, checkpoint, Console(quiet=True))
    assert config.training.micro_batch == 4
