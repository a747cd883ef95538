"""Local training throughput (images/s) of the shared training step on this machine.

Times full alternating DCGAN steps (G forward, D on real and fake, G through D, two Adam steps) for
the 32x32 grey Fashion-MNIST model and the 64x64 RGB CelebA model at batch 64 and 128. Real data
loading is timed separately for Fashion-MNIST (in-memory batches).

    python benchmarks/local_throughput.py [--device auto] [--steps 10] [--threads N]

Prints a table; it is not a test (these machines are noisy): put its figures in your notes.
"""

from __future__ import annotations

import argparse
import time

import torch

from ganfriends.device import describe_device, resolve_device
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models
from ganfriends.step import MicroBatch, make_optimizers, train_step

CASES = (
    ("fashion-mnist 32x32x1", ModelConfig(image_size=32, channels=1)),
    ("celeba 64x64x3", ModelConfig(image_size=64, channels=3)),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_step(
    config: ModelConfig, batch: int, device: torch.device, steps: int, warmup: int
) -> float:
    generator, discriminator = build_models(config, seed=0)
    generator.to(device).train()
    discriminator.to(device).train()
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    loss = make_loss("bce")
    real = (
        torch.rand(batch, config.channels, config.image_size, config.image_size, device=device) * 2
        - 1
    )
    z = torch.randn(batch, config.latent_dim, 1, 1, device=device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        train_step(
            generator,
            discriminator,
            loss,
            [MicroBatch(real, z)],
            "alternating",
            optimizer_g=opt_g,
            optimizer_d=opt_d,
        )
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def bench_fashion_mnist_loading(batch: int, batches: int = 200) -> float | None:
    try:
        from ganfriends.data import make_dataset

        dataset = make_dataset("fashion-mnist", download=False)
    except Exception:
        return None
    order = torch.randperm(len(dataset)).tolist()
    start = time.perf_counter()
    for i in range(batches):
        dataset.get_batch(order[i * batch : (i + 1) * batch])
    return batch * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}, torch {torch.__version__}\n")
    print(f"| {'model':<22} | {'batch':>5} | {'train img/s':>11} | {'step ms':>8} |")
    print(f"|{'-' * 24}|{'-' * 7}|{'-' * 13}|{'-' * 10}|")
    for name, config in CASES:
        for batch in (64, 128):
            rate = bench_step(config, batch, device, args.steps, args.warmup)
            print(f"| {name:<22} | {batch:>5} | {rate:>11,.0f} | {1000 * batch / rate:>8.1f} |")
    for batch in (64, 128):
        loading = bench_fashion_mnist_loading(batch)
        if loading is not None:
            print(f"\nfashion-mnist get_batch({batch}) loading: {loading:,.0f} img/s")


if __name__ == "__main__":
    main()
