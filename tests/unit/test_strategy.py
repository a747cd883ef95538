"""train-local's --strategy: its one-line errors, and the DeepSpeed hooks in a real gloo world of
one (the engines' backward, all-reduce and step leave exactly what the plain step leaves)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.distributed as dist

from ganfriends.cluster.deepspeed import import_deepspeed
from ganfriends.cluster.distributed import Cluster, StepHooks, joined
from ganfriends.errors import ConfigError
from ganfriends.models import build_models
from ganfriends.step import make_optimizers, train_step
from tests.unit.test_distributed import CONFIG, LOSS, make_batch, state, world_of_one_env


def torchrun_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A world of one's torchrun variables, with DeepSpeed set to the CPU."""
    env = world_of_one_env(monkeypatch)
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")  # restored afterwards (import_deepspeed sets it)
    return env


def test_without_deepspeed_installed_the_strategy_is_one_error_before_any_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = torchrun_env(monkeypatch)
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # what `import` sees when it is absent
    with pytest.raises(ConfigError, match=r"pip install 'ganfriends\[deepspeed\]'$"):
        import_deepspeed(torch.device("cpu"))
    with (
        pytest.raises(ConfigError, match="needs the deepspeed package"),
        joined("cpu", "gloo", env=env, strategy="deepspeed"),
    ):
        pass
    assert not dist.is_initialized()


def test_deepspeed_outside_torchrun_and_unknown_strategies_are_errors() -> None:
    with (
        pytest.raises(ConfigError, match="launch with torchrun"),
        joined("cpu", env={}, strategy="deepspeed"),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="unknown --strategy 'zero'"),
        joined("cpu", env={}, strategy="zero"),
    ):
        pass
    with joined("cpu", env={}, strategy="ddp") as cluster:  # a world of one: nothing to reduce
        assert not cluster.distributed


def two_steps(rule: str, cluster: Cluster | None) -> list[torch.Tensor]:
    """Weights, buffers and D's Adam moments after 2 steps: plain, or with ``cluster``'s hooks."""
    batches = [make_batch(4, seed=4), make_batch(3, seed=5)]  # uneven micro-batches
    generator, discriminator = build_models(CONFIG, seed=0)
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    hooks = StepHooks(opt_g, opt_d)
    if cluster is not None:
        hooks = cluster.step_hooks(generator, discriminator, opt_g, opt_d, micro_batch=4, share=7)
        # The engines step the very Adam a checkpoint saves (a DeepSpeed optimizer wraps it: an
        # attribute torch's Optimizer type does not declare).
        assert hooks.optimizer_g.optimizer is opt_g  # type: ignore[attr-defined]
    for _ in range(2):
        hooks.begin_step()
        train_step(generator, discriminator, LOSS, batches, rule,
                   optimizer_g=hooks.optimizer_g, optimizer_d=hooks.optimizer_d,
                   reduce=hooks.reduce, backward=hooks.backward)  # fmt: skip
    moments = [s["exp_avg"] for s in opt_d.state.values()]
    return [*state(generator, discriminator), *moments]


@pytest.mark.slow  # 3 s, but DeepSpeed's first use on a machine compiles its CPU op (~40 s)
def test_deepspeed_engines_in_a_world_of_one_leave_the_plain_step_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("deepspeed", reason="the deepspeed extra is not installed")
    env = torchrun_env(monkeypatch)
    # One process group for both rules: DeepSpeed keeps its groups in globals, which a second
    # group in the same process would not replace (one run per process, as under torchrun).
    with joined("cpu", "gloo", env=env, strategy="deepspeed") as cluster:
        assert cluster.describe() == " | 1 processes (gloo) through DeepSpeed engines"
        for rule in ("alternating", "simultaneous"):
            through_engines = two_steps(rule, cluster)
            plain = two_steps(rule, None)
            for a, b in zip(plain, through_engines, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
