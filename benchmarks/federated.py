"""Federated mode (FeGAN) on non-iid Fashion-MNIST: throughput, weighting/sampling, and cost.

Every run uses FeGAN's 32x32 LSGAN (``training.model=lsgan``, ``training.loss=lsgan``) on the CPU
and FeGAN's README setting unless a table says otherwise: 41 devices (plus device 0), fraction
0.05 (4 members a round), 30 local steps of batch 50, non-iid partition with magic_num 3000,
kl-exp weights, class-balanced sampling. Three markdown tables go to stdout, one progress line
per run to stderr:

1. Throughput: ``simulate --mode federated`` for ``--throughput-rounds`` rounds against
   ``train_local`` (batch 50, same model and loss) on the same number of images, side by side.
   ``seconds`` is the training loop only (the last history row's ``elapsed_s``, which starts when
   the loop does: dataset load and set-up are left out). A 1-step local run warms up first.
2. Weighting and sampling at equal rounds: FedAvg (random members), KL-exp, KL-linear and KL-exp
   with balanced sampling, ``--rounds`` rounds each, over ``--seeds``; FID/KID of each run's final
   generator (mean ± std over seeds).
3. Federated vs local vs class mode at equal images seen: table 2's FedAvg run of the first seed,
   ``train_local`` (batch 50) and ``simulate --mode sync`` (units of 320 images, 3 units per
   update, micro-batch 50) on as many images; worker bytes per image are the bytes the class
   transport would move (``bytes_down + bytes_up`` of ``history.csv``) over the images trained.
   A second federated row resets each device's local Adam every round (``--local-state reset``):
   FeGAN keeps it, so its moments (2x the model) cross the database both ways every round.
   Two goal lines follow: federated FID within 10% of local, and >= 10x fewer bytes per image
   than the class mode.

FID/KID come from one ``Evaluator`` (ganfriends' classifier features, ``--eval-samples``
generated vs held-out test images, evaluation seed 0) prepared once and reused for every run.

    python benchmarks/federated.py [--rounds 30] [--seeds 0 1 2] [--eval-samples 2000]
        [--throughput-rounds 5] [--local-steps 30] [--tables 1 2 3] [--workdir DIR] [--quick]

``--quick`` checks the script end to end in minutes: 2 rounds, seed 0, 256 evaluation samples,
1 throughput round and 5 local steps (any option given explicitly wins over ``--quick``). The
default run trains about 2.6 million images: hours on a 2-core CPU. Outputs (histories,
checkpoints, samples) go to a temporary directory unless ``--workdir`` keeps them. The config
file and ``GANFRIENDS_*`` variables are ignored, so the settings are exactly the ones above.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ganfriends.config import Config, load_config
from ganfriends.evaluation import Evaluator
from ganfriends.evaluation.checkpoints import evaluate_checkpoint
from ganfriends.training.history import read_history
from ganfriends.training.local import train_local
from ganfriends.training.simulate import simulate

DATASET = "fashion-mnist"
IMAGE_SIZE = 32
BATCH = 50  # FeGAN's B, and the local batch compared with it
# FeGAN's README setting (the rounds and the weighting/sampling vary per table).
FEGAN = {
    "federated.devices": 41,
    "federated.fraction": 0.05,
    "federated.batch_size": BATCH,
    "federated.non_iid": True,
    "federated.magic_num": 3000,
}
# The class mode's default schedule, with FeGAN's batch as its micro-batch.
SYNC = {
    "training.images_per_work_unit": 320,
    "training.workunits_per_update": 3,
    "training.micro_batch": BATCH,
}
# (label, weighting, balanced sampling) of table 2.
VARIANTS = (
    ("FedAvg (random)", "fedavg", False),
    ("KL-exp (random)", "kl-exp", False),
    ("KL-linear (random)", "kl-linear", False),
    ("KL-exp + balanced", "kl-exp", True),
)
NEVER = 10**9  # a sample/checkpoint interval no run reaches: only the final outputs are written
DEFAULTS: dict[str, Any] = {
    "rounds": 30,
    "seeds": [0, 1, 2],
    "eval_samples": 2000,
    "throughput_rounds": 5,
    "local_steps": 30,
}
QUICK: dict[str, Any] = {
    "rounds": 2,
    "seeds": [0],
    "eval_samples": 256,
    "throughput_rounds": 1,
    "local_steps": 5,
}


@dataclass
class Run:
    """What one training run left: its images, timings, traffic and (once scored) quality."""

    label: str
    images_seen: int
    loop_seconds: float  # last history row's elapsed_s: the training loop alone
    wall_seconds: float  # the whole call, dataset load and set-up included
    bytes_moved: int  # bytes_down + bytes_up over the run (0 for local training)
    checkpoint: Path
    fid: float = float("nan")
    kid: float = float("nan")

    @property
    def bytes_per_image(self) -> float:
        return self.bytes_moved / max(1, self.images_seen)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, help=f"rounds of table 2 and 3 (default {DEFAULTS['rounds']})"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="seeds of table 2 (default 0 1 2); table 3: the first"
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        help=f"generated (and held-out) images per score (default {DEFAULTS['eval_samples']})",
    )
    parser.add_argument(
        "--throughput-rounds",
        type=int,
        help=f"federated rounds timed in table 1 (default {DEFAULTS['throughput_rounds']})",
    )
    parser.add_argument(
        "--local-steps",
        type=int,
        help=f"FeGAN's E, local steps per device and round (default {DEFAULTS['local_steps']})",
    )
    parser.add_argument(
        "--tables",
        type=int,
        nargs="+",
        choices=(1, 2, 3),
        default=[1, 2, 3],
        help="which tables to run (default: all; table 3 alone trains its own FedAvg run)",
    )
    parser.add_argument(
        "--data-dir", help="where the datasets and the feature cache are (default: ganfriends')"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep every run's outputs here (default: a temporary dir)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings to check the script: 2 rounds, seed 0, 256 samples, 1 throughput "
        "round, 5 local steps",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("rounds", "eval_samples", "throughput_rounds", "local_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet() -> Console:
    # Not a terminal, so no live progress bar is drawn; quiet, so nothing is kept either.
    return Console(file=io.StringIO(), quiet=True)


class Bench:
    """Runs training jobs in numbered output directories and scores them with one evaluator."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.count = 0
        self._evaluator: Evaluator | None = None

    def config(self, out_dir: Path, overrides: dict[str, Any]) -> Config:
        common: dict[str, Any] = {
            "data.dataset": DATASET,
            "data.data_dir": self.args.data_dir,
            "data.download": False,
            "training.model": "lsgan",
            "training.loss": "lsgan",
            "training.device": "cpu",
            "training.output_dir": str(out_dir),
        }
        return load_config(overrides={**common, **overrides}, env={}, default_file=None)

    def out_dir(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{self.count:02d}-{name}"

    def federated(
        self,
        name: str,
        *,
        rounds: int,
        seed: int,
        weighting: str,
        balanced: bool,
        local_state: str = "keep",
    ) -> Run:
        return self.simulated(
            name,
            {
                **FEGAN,
                "coordinator.mode": "federated",
                "federated.rounds": rounds,
                "federated.local_steps": self.args.local_steps,
                "federated.weighting": weighting,
                "federated.balanced_sampling": balanced,
                "federated.local_state": local_state,
                "training.seed": seed,
            },
        )

    def sync(self, name: str, *, updates: int, seed: int) -> Run:
        return self.simulated(
            name,
            {
                **SYNC,
                "coordinator.mode": "sync",
                "coordinator.max_iterations": updates,
                "training.seed": seed,
            },
        )

    def simulated(self, name: str, overrides: dict[str, Any]) -> Run:
        out = self.out_dir(name)
        config = self.config(out, {**overrides, "coordinator.sample_interval": NEVER})
        start = time.monotonic()
        result = simulate(config, console=quiet())
        wall = time.monotonic() - start
        if result.stopped_early:
            raise SystemExit(f"{name}: the simulation stopped early")
        rows = read_history(out / "history.csv")
        moved = sum(int(float(r["bytes_down"])) + int(float(r["bytes_up"])) for r in rows)
        return self.finish(
            Run(name, result.images_seen, loop_seconds(rows), wall, moved, result.latest_checkpoint)
        )

    def local(self, name: str, *, steps: int, seed: int) -> Run:
        out = self.out_dir(name)
        config = self.config(
            out,
            {
                "training.batch_size": BATCH,
                "training.max_steps": steps,
                "training.seed": seed,
                "training.sample_interval": NEVER,
                "training.checkpoint_interval": NEVER,
            },
        )
        start = time.monotonic()
        result = train_local(config, console=quiet())
        wall = time.monotonic() - start
        if result.stopped_early:
            raise SystemExit(f"{name}: local training stopped early")
        rows = read_history(out / "history.csv")
        return self.finish(
            Run(name, result.images_seen, loop_seconds(rows), wall, 0, result.latest_checkpoint)
        )

    def finish(self, run: Run) -> Run:
        progress(
            f"[run {self.count}] {run.label}: {run.images_seen:,} images in "
            f"{run.wall_seconds:.0f} s (training loop {run.loop_seconds:.0f} s, "
            f"{run.images_seen / max(run.loop_seconds, 1e-9):,.0f} img/s)"
        )
        return run

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            start = time.monotonic()
            self._evaluator = Evaluator.for_dataset(
                DATASET,
                data_dir=self.args.data_dir,
                image_size=IMAGE_SIZE,
                num_samples=self.args.eval_samples,
                seed=0,
                device="cpu",
                download=False,
                progress=progress,
            )
            progress(
                f"evaluator ready in {time.monotonic() - start:.0f} s: "
                f"{self._evaluator.num_real} held-out images"
            )
        return self._evaluator

    def score(self, run: Run) -> Run:
        start = time.monotonic()
        report = evaluate_checkpoint(
            run.checkpoint, evaluator=self.evaluator, num_samples=self.args.eval_samples
        )
        run.fid, run.kid = report.metrics["fid"], report.metrics["kid_mean"]
        progress(
            f"  scored {run.label}: FID {run.fid:.2f}, KID {run.kid:.4f} "
            f"({time.monotonic() - start:.0f} s)"
        )
        return run


def loop_seconds(rows: list[dict[str, str]]) -> float:
    """The training loop's duration: ``elapsed_s`` of the last history row."""
    if not rows:
        raise SystemExit("a run wrote no history rows")
    return float(rows[-1]["elapsed_s"])


def mean_std(values: Sequence[float], digits: int) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table_throughput(bench: Bench) -> None:
    args = bench.args
    progress("table 1: throughput")
    bench.local("warmup", steps=1, seed=0)
    fed = bench.federated(
        "throughput-federated",
        rounds=args.throughput_rounds,
        seed=0,
        weighting="kl-exp",
        balanced=True,
    )
    steps = max(1, round(fed.images_seen / BATCH))
    local = bench.local("throughput-local", steps=steps, seed=0)
    local_rate = local.images_seen / local.loop_seconds
    print(
        f"\n### 1. Throughput: {args.throughput_rounds} federated round(s) vs train-local, "
        f"LSGAN, batch {BATCH}, CPU, {torch.get_num_threads()} torch threads\n"
    )
    print("| mode | images | seconds | images/s | ratio to local |")
    print("|---|---:|---:|---:|---:|")
    for label, run in (("train-local", local), ("federated (simulate)", fed)):
        rate = run.images_seen / run.loop_seconds
        print(
            f"| {label} | {run.images_seen:,} | {run.loop_seconds:.1f} | {rate:,.1f} | "
            f"{rate / local_rate:.2f} |"
        )
    ratio = fed.images_seen / fed.loop_seconds / local_rate
    print(f"\nfederated images/s within 10% of train-local: {verdict(ratio >= 0.9)} ({ratio:.2f}x)")


def table_variants(bench: Bench) -> dict[str, list[Run]]:
    args = bench.args
    progress("table 2: weighting and sampling")
    runs: dict[str, list[Run]] = {}
    for label, weighting, balanced in VARIANTS:
        for seed in args.seeds:
            name = f"{weighting}{'-balanced' if balanced else ''}-seed{seed}"
            run = bench.federated(
                name, rounds=args.rounds, seed=seed, weighting=weighting, balanced=balanced
            )
            runs.setdefault(label, []).append(bench.score(run))
    seeds = " ".join(map(str, args.seeds))
    print(
        f"\n### 2. Weighting and sampling, non-iid, {args.rounds} rounds, seeds {seeds}, "
        f"FID/KID on {args.eval_samples} samples\n"
    )
    print("| variant | FID mean ± std | KID mean ± std | rounds | images seen |")
    print("|---|---:|---:|---:|---:|")
    for label, variant_runs in runs.items():
        images = statistics.fmean(r.images_seen for r in variant_runs)
        print(
            f"| {label} | {mean_std([r.fid for r in variant_runs], 2)} | "
            f"{mean_std([r.kid for r in variant_runs], 4)} | {args.rounds} | {images:,.0f} |"
        )
    return runs


def table_modes(bench: Bench, federated: Run) -> None:
    args = bench.args
    seed = args.seeds[0]
    progress("table 3: federated vs local vs class mode")
    images = federated.images_seen
    local = bench.score(bench.local("equal-local", steps=max(1, round(images / BATCH)), seed=seed))
    per_update = SYNC["training.images_per_work_unit"] * SYNC["training.workunits_per_update"]
    sync = bench.score(
        bench.sync("equal-sync", updates=max(1, round(images / per_update)), seed=seed)
    )
    reset = bench.score(
        bench.federated(
            "fedavg-reset",
            rounds=args.rounds,
            seed=seed,
            weighting="fedavg",
            balanced=False,
            local_state="reset",
        )
    )
    fed_bpi = federated.bytes_per_image
    ratio = sync.bytes_per_image / fed_bpi
    reset_ratio = sync.bytes_per_image / reset.bytes_per_image
    print(
        f"\n### 3. At equal images seen: federated (FedAvg, {args.rounds} rounds, seed {seed}) "
        f"vs train-local vs class mode (sync), FID/KID on {args.eval_samples} samples\n"
    )
    print("| mode | images seen | FID | KID | worker bytes per image | class bytes / these bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = (
        ("federated (FeGAN: local Adam kept)", federated, f"{fed_bpi:,.0f}", f"{ratio:.2f}"),
        (
            "federated (local Adam reset)",
            reset,
            f"{reset.bytes_per_image:,.0f}",
            f"{reset_ratio:.2f}",
        ),
        ("train-local", local, "n/a", "n/a"),
        ("class mode (sync)", sync, f"{sync.bytes_per_image:,.0f}", "1.00"),
    )
    for label, run, bpi, rel in rows:
        print(f"| {label} | {run.images_seen:,} | {run.fid:.2f} | {run.kid:.4f} | {bpi} | {rel} |")
    print(
        f"\nfederated within 10% of local FID: {verdict(federated.fid <= 1.1 * local.fid)} "
        f"(federated {federated.fid:.2f}, local {local.fid:.2f})"
    )
    print(
        f"at least 10x fewer worker bytes per image than the class mode: "
        f"{verdict(ratio >= 10)} ({ratio:.2f}x; with the local Adam reset {reset_ratio:.2f}x)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ganfriends-federated-") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, root)
        print(
            f"FeGAN's LSGAN on non-iid {DATASET}, CPU, {torch.get_num_threads()} torch threads; "
            f"E={args.local_steps} local steps of B={BATCH}, {FEGAN['federated.devices']} devices, "
            f"fraction {FEGAN['federated.fraction']}, magic_num {FEGAN['federated.magic_num']}"
        )
        if 1 in args.tables:
            table_throughput(bench)
        if 2 in args.tables:
            fedavg = table_variants(bench)[VARIANTS[0][0]][0]
        elif 3 in args.tables:
            fedavg = bench.score(
                bench.federated(
                    "fedavg", rounds=args.rounds, seed=args.seeds[0], weighting="fedavg",
                    balanced=False,
                )
            )  # fmt: skip
        if 3 in args.tables:
            table_modes(bench, fedavg)
    progress(f"done in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
