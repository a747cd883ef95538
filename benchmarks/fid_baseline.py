"""FID baseline: local DCGAN training on Fashion-MNIST 32x32, evaluated every K steps.

Trains exactly as ``ganfriends train-local`` does by default (the shared ``train_step``, alternating
rule, non-saturating BCE, batch 128, Adam 2e-4 / (0.5, 0.999), data order and noise from the run's
rng keys) for a fixed image budget, and evaluates FID, KID and precision/recall on ganfriends'
classifier features with 2,000 generated vs 2,000 held-out (test split) images every K steps.

    python benchmarks/fid_baseline.py [--images 180000] [--eval-every 100] [--eval-samples 2000]

Writes ``benchmarks/results/fid_baseline.csv`` and ``fid_baseline.png`` and prints the table.
``seconds`` is training time only; evaluation time is in ``eval_seconds``. The feature classifier
is trained on the first run (about a minute) and cached in ``<data dir>/features``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

from ganfriends import rng
from ganfriends.data import make_dataset
from ganfriends.device import describe_device, resolve_device
from ganfriends.evaluation import Evaluator
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models
from ganfriends.step import MicroBatch, make_optimizers, train_step

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import pyplot, save_figure

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = (
    "images_seen",
    "step",
    "fid",
    "kid_mean",
    "precision",
    "recall",
    "seconds",
    "kid_std",
    "eval_seconds",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=180_000, help="training image budget")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=100, help="evaluate every K steps")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "fid_baseline.csv")
    return parser.parse_args()


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    plt = pyplot()
    images = [r["images_seen"] / 1000 for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(images, [r["fid"] for r in rows], marker="o")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("FID (classifier features, log)")
    axes[1].errorbar(
        images, [r["kid_mean"] for r in rows], yerr=[r["kid_std"] for r in rows], marker="o"
    )
    axes[1].set_yscale("symlog", linthresh=0.1)
    axes[1].set_ylabel("KID (mean ± std)")
    axes[2].plot(images, [r["precision"] for r in rows], marker="o", label="precision")
    axes[2].plot(images, [r["recall"] for r in rows], marker="s", label="recall")
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("images seen (thousands)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(plt, fig, path)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dataset = make_dataset("fashion-mnist")
    config = ModelConfig(image_size=32, channels=1)
    steps_per_epoch = len(dataset) // args.batch_size
    total_steps = max(1, args.images // args.batch_size)

    start = time.monotonic()
    evaluator = Evaluator.for_dataset(
        "fashion-mnist", num_samples=args.eval_samples, device=device, progress=print
    )
    print(f"evaluator ready in {time.monotonic() - start:.1f} s: {evaluator.describe()}")

    generator, discriminator = build_models(config, seed=rng.derive_seed(args.seed, rng.INIT))
    generator.to(device).train()
    discriminator.to(device).train()
    opt_g, opt_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    loss = make_loss("bce")

    rows: list[dict[str, float]] = []
    train_seconds, images_seen = 0.0, 0

    def evaluate(step: int) -> None:
        t0 = time.monotonic()
        metrics = evaluator.evaluate(generator, num_samples=args.eval_samples)
        row = {
            **metrics,
            "images_seen": images_seen,
            "step": step,
            "seconds": round(train_seconds, 1),
            "eval_seconds": round(time.monotonic() - t0, 2),
        }
        rows.append(row)
        print(
            f"step {step:5d}  images {images_seen:7d}  FID {row['fid']:8.2f}  "
            f"KID {row['kid_mean']:8.3f}±{row['kid_std']:.3f}  P {row['precision']:.3f}  "
            f"R {row['recall']:.3f}  train {train_seconds:6.0f} s  eval {row['eval_seconds']} s",
            flush=True,
        )

    print(
        f"training {total_steps} steps x {args.batch_size} on {describe_device(device)}, "
        f"evaluating every {args.eval_every} steps on {args.eval_samples} samples"
    )
    evaluate(0)
    for step in range(total_steps):
        epoch, position = divmod(step, steps_per_epoch)
        order = rng.permutation(len(dataset), args.seed, rng.DATA_ORDER, epoch)
        batch = order[position * args.batch_size : (position + 1) * args.batch_size].tolist()
        t0 = time.monotonic()
        real, _ = dataset.get_batch(batch)
        z = rng.latent_noise(real.shape[0], config.latent_dim, args.seed, rng.NOISE, step)
        stats = train_step(
            generator,
            discriminator,
            loss,
            [MicroBatch(real.to(device), z.to(device))],
            "alternating",
            optimizer_g=opt_g,
            optimizer_d=opt_d,
        )
        train_seconds += time.monotonic() - t0
        images_seen += stats.images
        if (step + 1) % args.eval_every == 0 or step + 1 == total_steps:
            evaluate(step + 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    png = args.out.with_suffix(".png")
    title = (
        f"DCGAN on Fashion-MNIST 32x32, batch {args.batch_size}, "
        f"{args.eval_samples} samples per evaluation"
    )
    plot(rows, png, title)
    eval_mean = sum(r["eval_seconds"] for r in rows) / len(rows)
    print(f"\nwrote {args.out} and {png}; mean evaluation time {eval_mean:.2f} s\n")
    print("| images_seen | step | FID | KID | precision | recall | train s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['images_seen']:,} | {r['step']} | {r['fid']:.2f} | "
            f"{r['kid_mean']:.3f} ± {r['kid_std']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
