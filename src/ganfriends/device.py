"""Choosing the torch device a process computes on."""

from __future__ import annotations

import torch

from ganfriends.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit choice must be available.

    ``cuda:N`` names one GPU of several (a worker per GPU: ``--device cuda:1``).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"unknown device {name!r}: choose auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name} was asked for, but no CUDA GPU is available (try --device auto)"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {name} was asked for, but this machine has "
            f"{torch.cuda.device_count()} CUDA GPU(s): cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            "--device mps was asked for, but Apple MPS is not available (try --device auto)"
        )
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'cuda (NVIDIA H100, 80 GB)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
