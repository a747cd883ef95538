from __future__ import annotations

import pytest
import torch

from ganfriends.blobs import InvalidBlob, TensorSpec, encode
from ganfriends.classroom.payload import (
    MAX_LOSS_PER_IMAGE,
    MAX_SCORE_PER_IMAGE,
    decode_result,
    encode_result,
    encode_weights,
    load_weights,
)
from ganfriends.compression import TRANSFERS, compress
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import result_spec
from ganfriends.rules.base import UnitResult
from ganfriends.rules.screening import clip_results
from ganfriends.rules.sync import collect_gradients as collect_result
from ganfriends.rules.sync import phase_spec
from ganfriends.step import StepStats, discriminator_backward, generator_backward

CONFIG = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)


def fill_grads(*modules: torch.nn.Module) -> None:
    for module in modules:
        for p in module.parameters():
            p.grad = torch.randn_like(p)


def test_result_round_trip() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    result = collect_result(g, d, StepStats(64, 80.0, 50.0, 32.0, 30.0))
    back = decode_result(encode_result(result), result_spec(g, d), max_images=64)
    assert back.images == 64 and back.stats.d_loss == pytest.approx(80.0 / 64)
    for name, tensor in result.parameters.items():
        assert torch.equal(back.parameters[name], tensor)
    assert set(back.buffers) == set(result.buffers)


def test_result_claiming_more_images_than_the_unit_is_refused() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    data = encode_result(collect_result(g, d, StepStats(65, 1.0, 1.0, 1.0, 1.0)))
    with pytest.raises(InvalidBlob, match="65"):
        decode_result(data, result_spec(g, d), max_images=64)


def test_unreadable_images_skipped_by_a_unit_travel_with_its_result() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    result = collect_result(g, d, StepStats(60, 1.0, 1.0, 1.0, 1.0, skipped=4))
    back = decode_result(encode_result(result), result_spec(g, d), max_images=64)
    assert (back.images, back.stats.skipped) == (60, 4)


def test_more_skipped_images_than_the_unit_left_are_refused() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    data = encode_result(collect_result(g, d, StepStats(60, 1.0, 1.0, 1.0, 1.0, skipped=5)))
    with pytest.raises(InvalidBlob, match="unreadable"):
        decode_result(data, result_spec(g, d), max_images=64)


def test_result_with_non_finite_statistics_is_refused() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    result = collect_result(g, d, StepStats(64, float("nan"), 1.0, 1.0, 1.0))
    with pytest.raises(InvalidBlob, match="d_loss_sum"):
        decode_result(encode_result(result), result_spec(g, d), max_images=64)


def test_result_without_statistics_is_refused() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    tensors = collect_result(g, d, StepStats(64, 1.0, 1.0, 1.0, 1.0))
    data = encode({**tensors.parameters, **tensors.buffers}, {"images": 64})
    with pytest.raises(InvalidBlob, match="statistic"):
        decode_result(data, result_spec(g, d), max_images=64)


def test_weights_round_trip_includes_batchnorm_buffers() -> None:
    g, _ = build_models(CONFIG, seed=0)
    g.state_dict()["main.1.running_mean"].fill_(0.5)  # the buffer itself, not a copy
    other, _ = build_models(CONFIG, seed=1)
    load_weights(other, encode_weights(g))
    for (name, a), b in zip(g.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_weights_of_another_architecture_are_refused() -> None:
    g, _ = build_models(CONFIG, seed=0)
    bigger, _ = build_models(
        ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=8), seed=0
    )
    with pytest.raises(InvalidBlob):
        load_weights(bigger, encode_weights(g))


FEEDBACK = TensorSpec({"feedback": (10, 1, 32, 32)}, {"feedback": torch.float32})


def feedback_result(value: float) -> UnitResult:
    """An MD-GAN unit result: the feedback dB/dx on b = 10 generated images."""
    return UnitResult(
        {"feedback": torch.full((10, 1, 32, 32), value)}, {}, StepStats(10, 1, 1, 1, 1)
    )


def test_md_gan_feedback_beyond_the_magnitude_bound_is_refused() -> None:
    with pytest.raises(InvalidBlob, match="feedback holds values beyond"):
        decode_result(encode_result(feedback_result(3e38)), FEEDBACK, max_images=10)


def test_md_gan_feedback_far_above_the_versions_median_is_clipped() -> None:
    honest = [feedback_result(1e-3), feedback_result(1.1e-3), feedback_result(0.9e-3)]
    screened, clipped = clip_results([*honest, feedback_result(1.0)], factor=3.0)
    assert [(c.index, c.group) for c in clipped] == [(3, "feedback")]
    assert float(screened[3].parameters["feedback"].norm()) == pytest.approx(
        3 * float(honest[0].parameters["feedback"].norm()), rel=1e-5
    )


def test_bfloat16_gradients_travel_in_half_the_bytes_and_arrive_as_float32() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    result = collect_result(g, d, StepStats(64, 80.0, 50.0, 32.0, 30.0))
    result.parameters = compress(result.parameters, TRANSFERS["bfloat16"]).values
    spec32 = phase_spec(g, d, "GD")
    spec16 = phase_spec(g, d, "GD", TRANSFERS["bfloat16"])

    blob32, blob16 = encode_result(result, spec32), encode_result(result, spec16)
    back = decode_result(blob16, spec16, max_images=64)

    gradient_bytes = sum(t.numel() for t in result.parameters.values()) * 2
    assert len(blob32) - len(blob16) == pytest.approx(gradient_bytes, rel=0.01)
    for name, tensor in result.parameters.items():
        assert back.parameters[name].dtype == torch.float32
        assert torch.equal(back.parameters[name], tensor)  # rounded once, then exact


def test_a_float32_upload_to_a_bfloat16_run_is_refused() -> None:
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    result = collect_result(g, d, StepStats(64, 80.0, 50.0, 32.0, 30.0))
    with pytest.raises(InvalidBlob):
        spec16 = phase_spec(g, d, "GD", TRANSFERS["bfloat16"])
        decode_result(encode_result(result), spec16, max_images=64)


def stats_blob(images: int, **stats: float) -> tuple[bytes, TensorSpec]:
    """A result blob of ``images`` images whose statistics are honest but for ``stats``."""
    g, d = build_models(CONFIG, seed=0)
    fill_grads(g, d)
    honest = {"d_loss_sum": 1.3 * images, "g_loss_sum": 0.7 * images,
              "d_real_sum": 0.5 * images, "d_fake_sum": 0.5 * images}  # fmt: skip
    # Every key is a float field (images is given apart); mypy checks ** against each field.
    result = collect_result(g, d, StepStats(images, **(honest | stats)))  # type: ignore[arg-type]
    return encode_result(result), result_spec(g, d)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("d_loss_sum", 1.7e308),  # stored and plotted before; two of them summed to inf
        ("g_loss_sum", 64 * MAX_LOSS_PER_IMAGE * 1.001),
        ("d_loss_sum", -1.0),  # both objectives are >= 0 for every image
        ("g_loss_sum", -1e-3),
        ("d_real_sum", 64 * MAX_SCORE_PER_IMAGE + 1),
        ("d_fake_sum", -64 * MAX_SCORE_PER_IMAGE - 1),
        ("d_fake_sum", -1.7e308),
    ],
)
def test_statistics_no_honest_unit_can_produce_are_refused(key: str, value: float) -> None:
    data, spec = stats_blob(64, **{key: value})
    with pytest.raises(InvalidBlob, match=f"^result statistic {key} = .* 64 image"):
        decode_result(data, spec, max_images=64)


def test_the_bounds_scale_with_the_images_a_result_claims() -> None:
    # Beyond 10 images' bound, within 64's: refused for a 10-image result only.
    data, spec = stats_blob(10, d_loss_sum=20 * MAX_LOSS_PER_IMAGE)
    with pytest.raises(InvalidBlob, match="d_loss_sum"):
        decode_result(data, spec, max_images=64)
    data, spec = stats_blob(64, d_loss_sum=20 * MAX_LOSS_PER_IMAGE)
    assert decode_result(data, spec, max_images=64).stats.d_loss_sum == 20 * MAX_LOSS_PER_IMAGE


def test_edge_values_are_accepted() -> None:
    edges = {"d_loss_sum": 0.0, "g_loss_sum": 64 * MAX_LOSS_PER_IMAGE,
             "d_real_sum": 64 * MAX_SCORE_PER_IMAGE, "d_fake_sum": -3.5}  # fmt: skip
    data, spec = stats_blob(64, **edges)
    back = decode_result(data, spec, max_images=64).stats
    assert {key: getattr(back, key) for key in edges} == edges


@pytest.mark.parametrize("loss_name", ["bce", "lsgan"])
@pytest.mark.parametrize("scale", [1.0, 30.0])  # a D from its first step, and one far out
def test_statistics_of_a_real_step_are_accepted(loss_name: str, scale: float) -> None:
    g, d = build_models(CONFIG, seed=0)
    loss = make_loss(loss_name)
    last = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # D's outputs pushed out: logits of +-10s, LSGAN outputs around 5
        last.weight.mul_(scale)
    real = torch.rand(64, 1, 32, 32) * 2 - 1
    fake = g(torch.randn(64, CONFIG.latent_dim, 1, 1))
    stats = discriminator_backward(d, loss, real, fake)
    stats.g_loss_sum = generator_backward(d, loss, fake)
    fill_grads(g, d)  # the statistics are under test, not the gradients' magnitude bound
    result = collect_result(g, d, stats)
    back = decode_result(encode_result(result), result_spec(g, d), max_images=64)
    assert back.stats.d_loss_sum == pytest.approx(stats.d_loss_sum)
