from __future__ import annotations

import json
import pickle

import pytest
import torch

from ganfriends.blobs import (
    InvalidBlob,
    TensorSpec,
    buffer_spec,
    decode,
    decode_optimizer_state,
    encode,
    encode_optimizer_state,
    parameter_spec,
)
from ganfriends.models import Discriminator, ModelConfig

CONFIG = ModelConfig(image_size=32, channels=1, g_features=4, d_features=4)


def grads_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {"d." + n: torch.randn_like(p) for n, p in module.named_parameters()}


def test_round_trip_keeps_tensors_and_metadata() -> None:
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    out, meta = decode(encode(tensors, {"images": 320, "loss": 0.5}))
    assert torch.equal(out["a"], tensors["a"]) and torch.equal(out["b"], tensors["b"])
    assert meta == {"images": 320, "loss": 0.5}


def test_blob_matching_the_spec_is_accepted() -> None:
    d = Discriminator(CONFIG)
    spec = parameter_spec(d, "d.")
    tensors, _ = decode(encode(grads_of(d)), spec)
    assert set(tensors) == set(spec.shapes)


def test_missing_tensor_is_rejected() -> None:
    d = Discriminator(CONFIG)
    grads = grads_of(d)
    grads.pop(next(iter(grads)))
    with pytest.raises(InvalidBlob, match="missing"):
        decode(encode(grads), parameter_spec(d, "d."))


def test_unexpected_tensor_is_rejected() -> None:
    d = Discriminator(CONFIG)
    grads = grads_of(d) | {"extra": torch.zeros(1)}
    with pytest.raises(InvalidBlob, match="unexpected"):
        decode(encode(grads), parameter_spec(d, "d."))


def test_wrong_shape_is_rejected() -> None:
    spec = TensorSpec({"w": (2, 2)}, {"w": torch.float32})
    with pytest.raises(InvalidBlob, match="shape"):
        decode(encode({"w": torch.zeros(2, 3)}), spec)


def test_wrong_dtype_is_rejected() -> None:
    spec = TensorSpec({"w": (2, 2)}, {"w": torch.float32})
    with pytest.raises(InvalidBlob, match="float64"):
        decode(encode({"w": torch.zeros(2, 2, dtype=torch.float64)}), spec)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected(bad: float) -> None:
    tensor = torch.zeros(4)
    tensor[2] = bad
    with pytest.raises(InvalidBlob, match="NaN or infinite"):
        decode(encode({"w": tensor}), TensorSpec.of({"w": tensor}))


def test_oversized_blob_is_rejected_before_parsing() -> None:
    spec = TensorSpec({"w": (2,)}, {"w": torch.float32})
    with pytest.raises(InvalidBlob, match="bytes"):
        decode(encode({"w": torch.zeros(2)}) + b" " * 10_000, spec)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 4,
        (10**12).to_bytes(8, "little") + b"{}",
        (2).to_bytes(8, "little") + b"[]",
        (4).to_bytes(8, "little") + b"\xff\xfe{}",
    ],
)
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidBlob):
        decode(data)


def test_a_pickle_is_never_loaded() -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    with pytest.raises(InvalidBlob):
        decode(pickle.dumps({"w": Boom()}))


def test_header_offsets_pointing_outside_the_data_are_rejected() -> None:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}
    ).encode()
    with pytest.raises(InvalidBlob, match="not valid safetensors"):
        decode(len(header).to_bytes(8, "little") + header + b"\x00" * 16)


def test_buffer_spec_covers_batchnorm_statistics() -> None:
    spec = buffer_spec(Discriminator(CONFIG), "dbuf.")
    assert any(name.endswith("running_var") for name in spec.shapes)
    assert any(dtype == torch.int64 for dtype in spec.dtypes.values())


def test_optimizer_state_round_trips() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = decode_optimizer_state(encode_optimizer_state(optimizer.state_dict()))
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1.0)
    fresh.load_state_dict(state)
    original = optimizer.state_dict()
    restored = fresh.state_dict()
    assert restored["param_groups"] == original["param_groups"]
    for index, entries in original["state"].items():
        for key, value in entries.items():
            other = restored["state"][index][key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other)
            else:
                assert value == other
