"""The DDP path on one GPU: images/s of the 64x64 DCGAN's training step in fp32, with bfloat16
autocast, with channels_last, and with both (issue #11, item 6).

    torchrun --standalone --nproc-per-node 1 benchmarks/gpu_step.py [--steps 50] [--batch 128]

Under torchrun the process joins a process group of one (nccl on a GPU), as train-local does, so
the step runs with the gradient all-reduce and BatchNorm chaining of ``--strategy ddp``; the
step is :func:`ganfriends.step.train_step` itself (alternating rule, micro-batches of
``--micro-batch``). Images are random: the figure is the step's speed, not a model's quality.
Without a GPU it runs on the CPU with gloo (``--steps 2 --batch 16`` checks the script).

Prints a table; not a test. Put the figures in your notes.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator, Sequence

import torch

from ganfriends.cluster.distributed import Cluster, joined
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models
from ganfriends.step import MicroBatch, make_optimizers, train_step

MODEL = ModelConfig(image_size=64, channels=3)  # the CelebA DCGAN
VARIANTS = {  # name: (bfloat16 autocast, channels_last)
    "fp32": (False, False),
    "bf16 autocast": (True, False),
    "channels_last": (False, True),
    "bf16 + channels_last": (True, True),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (cuDNN picks)")
    parser.add_argument("--batch", type=int, default=128, help="images per step")
    parser.add_argument("--micro-batch", type=int, default=128, help="images per forward")
    return parser.parse_args(argv)


@contextlib.contextmanager
def precision(device: torch.device, bf16: bool) -> Iterator[None]:
    """bfloat16 autocast around the step (no loss scaling: bfloat16 has float32's range)."""
    if not bf16:
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def images_per_second(cluster: Cluster, args: argparse.Namespace, bf16: bool, last: bool) -> float:
    """Time ``args.steps`` steps of one variant after ``args.warmup`` untimed ones."""
    device = cluster.device
    generator, discriminator = build_models(MODEL, seed=0)
    generator, discriminator = generator.to(device), discriminator.to(device)
    layout = torch.channels_last if last else torch.contiguous_format
    # torch's stubs leave out Module.to(memory_format=...), which torch documents and accepts.
    generator = generator.to(memory_format=layout)  # type: ignore[call-overload]
    discriminator = discriminator.to(memory_format=layout)  # type: ignore[call-overload]
    optimizer_g, optimizer_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    hooks = cluster.step_hooks(
        generator, discriminator, optimizer_g, optimizer_d,
        micro_batch=args.micro_batch, share=args.batch,
    )  # fmt: skip
    gen = torch.Generator(device="cpu").manual_seed(0)
    real = (torch.rand(args.batch, 3, 64, 64, generator=gen) * 2 - 1).to(device)
    real = real.contiguous(memory_format=layout)
    z = torch.randn(args.batch, MODEL.latent_dim, 1, 1, generator=gen).to(device)
    batches = [
        MicroBatch(real[i : i + args.micro_batch], z[i : i + args.micro_batch])
        for i in range(0, args.batch, args.micro_batch)
    ]
    loss = make_loss("bce")

    def step() -> None:
        hooks.begin_step()
        with precision(device, bf16):
            train_step(
                generator, discriminator, loss, batches, "alternating",
                optimizer_g=hooks.optimizer_g, optimizer_d=hooks.optimizer_d,
                reduce=hooks.reduce, backward=hooks.backward,
            )  # fmt: skip

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    images = int(args.steps) * int(args.batch)
    return images / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    """Every variant; one markdown table from rank 0."""
    args = parse_args(argv)
    with joined() as cluster:
        if cluster.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels
        rates = {
            name: images_per_second(cluster, args, bf16, last)
            for name, (bf16, last) in VARIANTS.items()
        }
        if not cluster.is_main:
            return
        where = (
            torch.cuda.get_device_name(cluster.device) if cluster.device.type == "cuda" else "CPU"
        )
        print(f"### 64x64 DCGAN, batch {args.batch} (micro-batch {args.micro_batch}), "
              f"{args.steps} steps, {cluster.world_size} process(es), {cluster.backend or 'no'} "
              f"group, {where}, torch {torch.__version__}\n")  # fmt: skip
        print("| variant | images/s | vs fp32 |")
        print("|---|---:|---:|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.0f} | {rate / rates['fp32']:.2f}x |")


if __name__ == "__main__":
    main()
