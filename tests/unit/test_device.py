"""Choosing the device: names are checked, unavailable choices are one clear line."""

from __future__ import annotations

import pytest
import torch

from ganfriends.device import resolve_device
from ganfriends.errors import ConfigError


def test_cpu_and_auto_resolve_on_any_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:1", "cuda:-1", "tpu"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_says_so(name: str) -> None:
    with pytest.raises(ConfigError, match=f"--device {name} was asked for, but no CUDA GPU"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_index_beyond_the_machines_is_refused() -> None:
    with pytest.raises(ConfigError, match="CUDA GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
