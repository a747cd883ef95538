"""The arithmetic of train-local's torchrun branch, without launching processes."""

from __future__ import annotations

import copy
import socket

import pytest
import torch
from torch import nn

from ganfriends.aggregate import chain_running_stats
from ganfriends.cluster.distributed import Cluster, joined, torchrun_place
from ganfriends.errors import ConfigError
from ganfriends.losses import NonSaturatingBCE
from ganfriends.models import ModelConfig, build_models
from ganfriends.step import MicroBatch, make_optimizers, train_step
from tests.tensors import grad_of, running_stats

CONFIG = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
LOSS = NonSaturatingBCE()


def make_batch(n: int, seed: int) -> MicroBatch:
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    return MicroBatch(real, torch.randn(n, CONFIG.latent_dim, 1, 1, generator=gen))


def state(*modules: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


def test_chained_running_stats_equal_one_process_running_every_share_in_turn() -> None:
    # Prepare: one BatchNorm with non-trivial statistics; 3 "processes" with 2 forwards each.
    torch.manual_seed(0)
    start = nn.BatchNorm2d(4, momentum=0.1)
    start_mean, start_var = running_stats(start)
    start_mean.uniform_(-1, 1)
    start_var.uniform_(0.5, 2)
    shares = [[torch.randn(5, 4, 3, 3) * (i + 1) + i for _ in range(2)] for i in range(3)]

    # Execute: one layer sees all forwards in rank order; each process's copy sees its own.
    one = copy.deepcopy(start)
    ends = []
    for share in shares:
        process = copy.deepcopy(start)
        for x in share:
            one(x)
            process(x)
        ends.append(process)
    decay = (1 - 0.1) ** 2
    end_stats = [running_stats(e) for e in ends]
    mean = chain_running_stats(start_mean, [m for m, _ in end_stats], [decay] * 3)
    var = chain_running_stats(start_var, [v for _, v in end_stats], [decay] * 3)

    # Assert
    torch.testing.assert_close(mean, one.running_mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(var, one.running_var, rtol=1e-6, atol=1e-7)


def test_averaging_running_stats_would_not_equal_one_process() -> None:
    # Why the statistics are chained rather than averaged (what DDP's buffer broadcast and the
    # class run's average do): the EMA weighs earlier shares less.
    start = torch.zeros(3)
    ends = [torch.full((3,), 1.0), torch.full((3,), 3.0)]
    chained = chain_running_stats(start, ends, [0.5, 0.5])
    assert torch.equal(chained, torch.full((3,), 0.5 * 1.0 + 3.0))  # 0.5 * c0 + c1
    assert not torch.equal(chained, (ends[0] + ends[1]) / 2)


class TwinHook:
    """A reduce hook as if a second process had the same share: sums double, so do the images."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, network: nn.Module, images: int) -> int:
        self.calls.append(type(network).__name__)
        for p in network.parameters():
            if p.grad is not None:
                p.grad.mul_(2)
        return 2 * images


@pytest.mark.parametrize("rule", ["alternating", "simultaneous"])
def test_the_hook_runs_on_d_then_g_and_its_count_divides_the_sums(rule: str) -> None:
    batch = make_batch(6, seed=1)
    results = []
    hooks = []
    for hook in (None, TwinHook()):
        generator, discriminator = build_models(CONFIG, seed=0)
        opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
        train_step(generator, discriminator, LOSS, [batch], rule,
                   optimizer_g=opt_g, optimizer_d=opt_d, reduce=hook)  # fmt: skip
        results.append(state(generator, discriminator))
        hooks.append(hook)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert isinstance(hooks[1], TwinHook) and hooks[1].calls == ["Discriminator", "Generator"]


def test_uneven_shares_give_the_exact_mean_over_all_images() -> None:
    # Process B (3 images) has summed its gradients; process A (5 images) adds them in its hook.
    share_a, share_b = make_batch(5, seed=2), make_batch(3, seed=3)
    sums: dict[str, list[torch.Tensor]] = {}

    def keep_sums(network: nn.Module, images: int) -> int:
        sums[type(network).__name__] = [grad_of(p).clone() for p in network.parameters()]
        return images

    def add_b(network: nn.Module, images: int) -> int:
        for p, other in zip(network.parameters(), sums[type(network).__name__], strict=True):
            grad_of(p).add_(other)
        return images + 3

    g_b, d_b = build_models(CONFIG, seed=0)
    train_step(g_b, d_b, LOSS, [share_b], "simultaneous", reduce=keep_sums)
    g_a, d_a = build_models(CONFIG, seed=0)
    train_step(g_a, d_a, LOSS, [share_a], "simultaneous", reduce=add_b)
    g_one, d_one = build_models(CONFIG, seed=0)
    train_step(g_one, d_one, LOSS, [share_a, share_b], "simultaneous")

    for net, ref in ((g_a, g_one), (d_a, d_one)):
        for p, q in zip(net.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_each_process_takes_its_slice_of_the_global_batch() -> None:
    assert Cluster(rank=1, world_size=4).share(8) == slice(2, 4)
    assert Cluster().share(7) == slice(0, 7)
    with pytest.raises(ConfigError, match="choose a multiple of 3"):
        Cluster(rank=0, world_size=3).share(8)


def test_torchrun_variables_are_read_and_checked() -> None:
    assert torchrun_place({}) is None
    assert torchrun_place({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    with pytest.raises(ConfigError, match="launch with torchrun"):
        torchrun_place({"RANK": "4", "WORLD_SIZE": "4"})


def test_without_torchrun_the_trainer_is_a_world_of_one() -> None:
    with joined("cpu", env={}) as cluster:
        assert (
            not cluster.distributed and cluster.is_main and cluster.reducer(nn.Linear(1, 1)) is None
        )


def world_of_one_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The variables torchrun sets for a world of one, set in this process too (gloo reads them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_a_real_world_of_one_leaves_the_step_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real gloo process group of one process: the reducer must be the identity.
    env = world_of_one_env(monkeypatch)
    batch = [make_batch(4, seed=4), make_batch(4, seed=5)]
    results = []
    with joined("cpu", "gloo", env=env) as cluster:
        assert cluster.distributed and cluster.backend == "gloo"
        for use_reducer in (False, True):
            generator, discriminator = build_models(CONFIG, seed=0)
            opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
            reducer = cluster.reducer(generator, discriminator) if use_reducer else None
            train_step(generator, discriminator, LOSS, batch, "alternating",
                       optimizer_g=opt_g, optimizer_d=opt_d, reduce=reducer)  # fmt: skip
            results.append(state(generator, discriminator))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
