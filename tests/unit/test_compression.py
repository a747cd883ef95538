"""The transfer choices of ``ganfriends.compression``: unbiased, keyed, bounded, and refused on
arrival when a blob does not carry what an honest worker's would."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ganfriends import rng
from ganfriends.blobs import InvalidBlob, TensorSpec
from ganfriends.classroom.payload import (
    decode_result,
    encode_download,
    encode_result,
    encode_weights,
    load_weights,
)
from ganfriends.compression import (
    TRANSFERS,
    compress,
    decompress,
    download_copy,
    scale_name,
    stochastic_bfloat16,
    stochastic_int8,
    wire_spec,
)
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules.sync import collect_gradients, phase_spec
from ganfriends.step import StepStats

INT8 = TRANSFERS["int8"]
DRAWS = 4096  # roundings of one input: the mean's spread is (one step) / (2 sqrt(DRAWS)) or less
CONFIG = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)


def between_bfloat16s(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n float32 values of mixed signs and magnitudes, each 0.3 of the way from a bfloat16 to
    the next one away from zero (where rounding to nearest is off by 0.3 of a step every time),
    and each one's step between those two bfloat16 values."""
    normal = torch.randn(n, generator=torch.Generator().manual_seed(1)) * 10
    low = normal.abs().to(torch.bfloat16)
    step = torch.nextafter(low, torch.tensor(float("inf"), dtype=torch.bfloat16)).float()
    step = step - low.float()
    return normal.sign() * (low.float() + 0.3 * step), step


def test_stochastic_bfloat16_rounding_is_unbiased() -> None:
    x, step = between_bfloat16s(256)
    rows = x.expand(DRAWS, -1).contiguous()

    mean = stochastic_bfloat16(rows, rng.generator_for(0)).double().mean(0)

    # 5 spreads of the mean; rounding to nearest misses by 0.3 of a step, far outside.
    bound = 5 * step.double() / (2 * DRAWS**0.5)
    assert bool(((mean - x.double()).abs() <= bound).all())
    assert not bool(((x.to(torch.bfloat16).double() - x.double()).abs() <= bound).any())


def test_stochastic_int8_rounding_is_unbiased() -> None:
    x = torch.randn(256, generator=torch.Generator().manual_seed(2))
    scale = x.abs().max() / 127
    rows = x.expand(DRAWS, -1).contiguous()

    q = stochastic_int8(rows, scale, rng.generator_for(0))

    mean = (q.double() * float(scale)).mean(0)
    assert bool(((mean - x.double()).abs() <= 5 * float(scale) / (2 * DRAWS**0.5)).all())


@pytest.mark.parametrize("magnitude", [0.0, 1e-30, 1e-3, 1.0, 1e5])
def test_an_int8_value_is_within_one_scale_of_its_input(magnitude: float) -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(3)) * magnitude

    sent = compress({"x": x}, INT8, 0, rng.TRANSFER, 7)

    assert sent.wire is not None
    scale = sent.wire[scale_name("x")]
    assert sent.wire["x"].dtype == torch.int8 and scale.dtype == torch.float32
    assert bool(((x - sent.values["x"]).abs() <= scale).all())


def tensors() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    return {"d.a": torch.randn(40, 3, generator=gen), "g.b": torch.randn(7, generator=gen) * 1e-4}


@pytest.mark.parametrize("choice", ["bfloat16-stochastic", "int8"])
def test_the_same_key_gives_the_same_bits_and_another_unit_other_draws(choice: str) -> None:
    how = TRANSFERS[choice]

    first, again = (compress(tensors(), how, 5, rng.TRANSFER, 1).wire or {} for _ in range(2))
    other = compress(tensors(), how, 5, rng.TRANSFER, 2).wire or {}

    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["d.a"], other["d.a"])


@pytest.mark.parametrize("choice", ["bfloat16", "bfloat16-stochastic", "int8"])
def test_the_receiver_decompresses_exactly_the_values_the_sender_combined(choice: str) -> None:
    sent = compress(tensors(), TRANSFERS[choice], 5, rng.TRANSFER, 1)
    assert sent.wire is not None

    back = decompress(sent.wire)

    assert back.keys() == sent.values.keys()
    assert all(torch.equal(back[k], sent.values[k]) for k in back)


def test_int8_travels_in_a_byte_a_value_and_a_float32_scale_per_tensor() -> None:
    values = tensors()
    spec = wire_spec(TensorSpec.of(values), INT8)

    wire = compress(values, INT8, 5, rng.TRANSFER, 1).wire or {}

    assert {k: (t.dtype, tuple(t.shape)) for k, t in wire.items()} == {
        k: (spec.dtypes[k], spec.shapes[k]) for k in spec.shapes
    }
    assert spec.nbytes == sum(t.numel() for t in values.values()) + 4 * len(values)


# ----------------------------------------------------------------------- on arrival


def int8_upload(tamper: Callable[[dict[str, torch.Tensor]], object]) -> tuple[bytes, TensorSpec]:
    """An honest int8 result of a D-and-G unit, its wire tensors changed by ``tamper``."""
    g, d = build_models(CONFIG, seed=0)
    for p in [*g.parameters(), *d.parameters()]:
        p.grad = torch.randn_like(p)
    result = collect_gradients(g, d, StepStats(64, 80.0, 50.0, 32.0, 30.0))
    sent = compress(result.parameters, INT8, 5, rng.TRANSFER, 1)
    result.parameters, result.wire = sent.values, sent.wire
    assert sent.wire is not None
    tamper(sent.wire)
    return encode_result(result), phase_spec(g, d, "GD", INT8)


def first_scale(wire: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(wire) if k.endswith(":scale"))


def first_values(wire: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(wire) if not k.endswith(":scale"))


def test_an_honest_int8_upload_arrives_as_the_values_the_worker_computed() -> None:
    blob, spec = int8_upload(lambda wire: None)

    back = decode_result(blob, spec, max_images=64)

    assert all(t.dtype == torch.float32 for t in back.parameters.values())
    assert not any(k.endswith(":scale") for k in back.parameters)


@pytest.mark.parametrize(
    ("scale", "reason"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "NaN or infinite"),
        (-0.5, "not a scale"),
        (1e6, "not a scale"),
    ],
)
def test_an_int8_upload_whose_scale_is_no_honest_scale_is_refused(
    scale: float, reason: str
) -> None:
    def bad_scale(wire: dict[str, torch.Tensor]) -> None:
        wire[first_scale(wire)] = torch.tensor(scale)

    blob, spec = int8_upload(bad_scale)

    with pytest.raises(InvalidBlob, match=reason):
        decode_result(blob, spec, max_images=64)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda wire: wire.update({first_values(wire): wire[first_values(wire)].float()}),
        lambda wire: wire.update({first_scale(wire): wire[first_scale(wire)].double()}),
        lambda wire: wire.pop(first_scale(wire)),
    ],
    ids=["float32-values", "float64-scale", "no-scale"],
)
def test_an_int8_upload_of_the_wrong_form_is_refused(
    tamper: Callable[[dict[str, torch.Tensor]], object],
) -> None:
    blob, spec = int8_upload(tamper)

    with pytest.raises(InvalidBlob):
        decode_result(blob, spec, max_images=64)


# ---------------------------------------------------------------- downloads (--download-dtype)


def network_state(seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.Tensor], set[str]]:
    """A small generator with BatchNorm, its state (CPU) and its parameter names."""
    generator, _ = build_models(CONFIG, seed=seed)
    state = {k: v.detach().clone() for k, v in generator.state_dict().items()}
    return generator, state, {name for name, _ in generator.named_parameters()}


@pytest.mark.parametrize("choice", ["bfloat16-stochastic", "int8"])
def test_an_unchanged_network_gets_the_same_download_copy_at_every_version(choice: str) -> None:
    _, state, parameters = network_state()
    first = download_copy(state, parameters, TRANSFERS[choice], 11)
    again = download_copy(
        {k: v.clone() for k, v in state.items()}, parameters, TRANSFERS[choice], 11
    )

    assert first.wire is not None and again.wire is not None
    assert all(torch.equal(first.wire[k], again.wire[k]) for k in first.wire)


def test_a_changed_network_draws_other_roundings() -> None:
    _, state, parameters = network_state()
    stepped = dict(state)
    name = sorted(parameters)[0]
    stepped[name] = state[name] + 1e-7  # a tiny step: the draws still change everywhere

    first = download_copy(state, parameters, INT8, 11).wire
    second = download_copy(stepped, parameters, INT8, 11).wire

    assert first is not None and second is not None
    other = sorted(parameters)[-1]
    assert not torch.equal(first[other], second[other])


def test_a_download_copy_rounds_parameters_and_keeps_batchnorm_buffers() -> None:
    _, state, parameters = network_state()
    copy = download_copy(state, parameters, INT8, 11)

    assert copy.wire is not None
    buffers = set(state) - parameters
    assert buffers and any(name.endswith("num_batches_tracked") for name in buffers)
    for name in buffers:
        assert copy.wire[name].dtype == state[name].dtype
        assert torch.equal(copy.values[name], state[name])
    for name in parameters:
        assert copy.wire[name].dtype == torch.int8
        scale = copy.wire[scale_name(name)]
        assert (copy.values[name] - state[name]).abs().max() <= scale


def test_a_float32_download_is_the_weights_themselves() -> None:
    _, state, parameters = network_state()
    copy = download_copy(state, parameters, TRANSFERS["float32"], 11)

    assert copy.wire is None
    assert all(torch.equal(copy.values[k], v) for k, v in state.items())


def test_int8_download_copies_are_unbiased_over_versions() -> None:
    _, state, parameters = network_state()
    name = sorted(parameters)[0]
    # Versions differ in their content (here, one buffer), so each draws its own rounding.
    copies = []
    for version in range(256):
        versioned = {**state, "version": torch.tensor(version)}
        copies.append(download_copy(versioned, parameters, INT8, 11).values[name])
    scale = float(state[name].abs().max()) / 127
    mean_error = (torch.stack(copies).mean(0) - state[name]).abs().max()

    assert mean_error < 0.25 * scale  # one rounding is off by up to a whole scale


@pytest.mark.parametrize("choice", ["float32", "bfloat16-stochastic", "int8"])
def test_a_worker_loads_exactly_the_values_of_the_copy_the_coordinator_published(
    choice: str,
) -> None:
    generator, state, parameters = network_state()
    blob = encode_download(generator, TRANSFERS[choice], 11) or encode_weights(generator)
    worker, _ = build_models(CONFIG, seed=5)

    load_weights(worker, blob, TRANSFERS[choice])

    expected = download_copy(state, parameters, TRANSFERS[choice], 11).values
    assert all(torch.equal(worker.state_dict()[k], expected[k]) for k in state)


def test_a_download_of_another_form_than_the_runs_is_refused() -> None:
    generator, _, _ = network_state()
    worker, _ = build_models(CONFIG, seed=5)

    with pytest.raises(InvalidBlob):
        load_weights(worker, encode_weights(generator), INT8)  # float32 where int8 is due
