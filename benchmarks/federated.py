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
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness
from benchmarks.harness import Run

BATCH = 50  # FeGAN's B, and the local batch compared with it
# FeGAN's 32x32 LSGAN, on every run.
MODEL = {"training.model": "lsgan", "training.loss": "lsgan"}
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, help=f"rounds of table 2 and 3 (default {DEFAULTS['rounds']})"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="seeds of table 2 (default 0 1 2); table 3: the first"
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
    harness.add_tables_argument(
        parser, 3, "which tables to run (default: all; table 3 alone trains its own FedAvg run)"
    )
    quick = "2 rounds, seed 0, 256 samples, 1 throughput round, 5 local steps"
    harness.add_run_arguments(parser, quick, DEFAULTS["eval_samples"])
    return harness.parse_run_args(parser, argv, DEFAULTS, QUICK)


class FederatedBench(harness.Bench):
    """The runs of the three tables: federated (FeGAN's setting), sync and local."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        super().__init__(root, data_dir=args.data_dir, eval_samples=args.eval_samples, model=MODEL)
        self.args = args

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
        overrides = {
            **FEGAN,
            "coordinator.mode": "federated",
            "federated.rounds": rounds,
            "federated.local_steps": self.args.local_steps,
            "federated.weighting": weighting,
            "federated.balanced_sampling": balanced,
            "federated.local_state": local_state,
            "training.seed": seed,
        }
        return self.simulated(name, overrides, iterations=rounds, devices=1)

    def sync(self, name: str, *, updates: int, seed: int) -> Run:
        overrides = {
            **SYNC,
            "coordinator.mode": "sync",
            "coordinator.max_iterations": updates,
            "training.seed": seed,
        }
        # Not checked against ``updates``: with the alternating rule a step is two versions.
        return self.simulated(name, overrides, iterations=None, devices=1)

    def local_run(self, name: str, *, steps: int, seed: int) -> Run:
        return self.local(name, steps=steps, seed=seed, batch=BATCH)


def table_throughput(bench: FederatedBench) -> None:
    args = bench.args
    harness.progress("table 1: throughput")
    bench.local_run("warmup", steps=1, seed=0)
    fed = bench.federated(
        "throughput-federated",
        rounds=args.throughput_rounds,
        seed=0,
        weighting="kl-exp",
        balanced=True,
    )
    steps = max(1, round(fed.images_seen / BATCH))
    local = bench.local_run("throughput-local", steps=steps, seed=0)
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
    ok = harness.verdict(ratio >= 0.9)
    print(f"\nfederated images/s within 10% of train-local: {ok} ({ratio:.2f}x)")


def table_variants(bench: FederatedBench) -> dict[str, list[Run]]:
    args = bench.args
    harness.progress("table 2: weighting and sampling")
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
            f"| {label} | {harness.mean_std([r.fid for r in variant_runs], 2)} | "
            f"{harness.mean_std([r.kid for r in variant_runs], 4)} | {args.rounds} | "
            f"{images:,.0f} |"
        )
    return runs


def table_modes(bench: FederatedBench, federated: Run) -> None:
    args = bench.args
    seed = args.seeds[0]
    harness.progress("table 3: federated vs local vs class mode")
    images = federated.images_seen
    local = bench.score(
        bench.local_run("equal-local", steps=max(1, round(images / BATCH)), seed=seed)
    )
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
        f"\nfederated within 10% of local FID: {harness.verdict(federated.fid <= 1.1 * local.fid)} "
        f"(federated {federated.fid:.2f}, local {local.fid:.2f})"
    )
    print(
        f"at least 10x fewer worker bytes per image than the class mode: "
        f"{harness.verdict(ratio >= 10)} ({ratio:.2f}x; with the local Adam reset "
        f"{reset_ratio:.2f}x)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with harness.work_root(args.workdir, "ganfriends-federated-") as root:
        bench = FederatedBench(args, root)
        threads = torch.get_num_threads()
        print(
            f"FeGAN's LSGAN on non-iid {harness.DATASET}, CPU, {threads} torch threads; "
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


if __name__ == "__main__":
    main()
