"""MD-GAN on Fashion-MNIST: bytes per iteration against the paper, and quality at equal updates.

Every run uses ganfriends' default DCGAN (32x32, non-saturating BCE, Adam 2e-4 / (0.5, 0.999))
on the CPU, ``--g-features``/``--d-features`` wide, and the paper's setting of Hardy, Le Merrer and
Sericola (IPDPS 2019): N = 10 devices, batches of b = 10, iid shards, L = 1 discriminator step
and a swap of the discriminators every E = 1 local epoch. Two markdown tables go to stdout, one
progress line per run to stderr:

1. Bytes per iteration vs the paper: a ``simulate --mode md-gan`` run of ``BYTES_ITERATIONS``
   iterations for k = 1 and k = ceil(log2 N). Its ``history.csv`` holds the bytes the class
   transport would move; per worker (device unit) and iteration they are split into (a) the
   generated batches down and the feedback up, compared with the paper's 2bd floats down and
   bd up (d = channels x 32 x 32 pixels, 4 bytes a float), and (b) the device state
   (discriminator and its Adam moments, ``MdganRule.device_state_spec(...).nbytes``), which
   crosses twice per unit after a device's first iteration (down, then up) and once (up) in its
   first. (a) is the total less (b). A goal line: (a) within 5% of the paper, down and up.
2. Quality at equal generator updates: MD-GAN with k = 1 and k = ceil(log2 N), federated
   averaging with E = 1 local step, every device every round (``federated.devices`` = N - 1
   clients plus device 0: N devices of batch b, as MD-GAN's), and ``train_local`` with batch b,
   each for ``--iterations`` generator updates over ``--seeds``: FID/KID of the final generator
   (mean ± std over seeds), images seen (real images trained on), the worker bytes per iteration
   (all devices together, and per device) and the seconds. The paper's claim follows: MD-GAN
   with k = ceil(log2 N) beats FL-GAN (federated, E = 1), by FID.

FID/KID come from one ``Evaluator`` (ganfriends' classifier features, ``--eval-samples``
generated vs held-out test images, evaluation seed 0) prepared once and reused for every run.

    python benchmarks/mdgan.py [--iterations 2000] [--seeds 0] [--eval-samples 2000]
        [--g-features 64] [--d-features 64] [--tables 1 2] [--threads N] [--workdir DIR]
        [--quick]

``--quick`` checks the script end to end in minutes: 20 iterations, seed 0, 256 evaluation samples
and networks 16 wide (any option given explicitly wins over ``--quick``). The default run takes
about an hour per seed on a 2-core CPU with one torch thread (measured at width 64: an MD-GAN
iteration 0.5 s, a federated round 0.7 s, a local step 0.06 s). Where other jobs share the cores,
torch's default threads can be 10-40x slower than one: pass ``--threads 1``. Outputs (histories,
checkpoints) go to a temporary directory unless ``--workdir`` keeps them. The config file and
``GANFRIENDS_*`` variables are ignored, so the settings are exactly the ones above.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganfriends.data import ImageDataset, make_dataset
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import make_rule, plan_from_config
from ganfriends.rules.capabilities import device_state_spec
from ganfriends.training.local import model_config_for

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness
from benchmarks.harness import Run

DEVICES = 10  # the paper's N
BATCH = 10  # the paper's b: per device and generated batch; the local batch too
K_LOG = max(1, math.ceil(math.log2(DEVICES)))  # the paper's k = ceil(log2 N)
KS = (1, K_LOG)
FLOAT_BYTES = 4
BYTES_ITERATIONS = 20  # table 1's runs: enough to average a device's first-iteration upload out
TOLERANCE = 0.05
# The paper's schedule besides N, b and k (ganfriends' md-gan defaults, written out).
MDGAN = {
    "federated.devices": DEVICES,
    "federated.batch_size": BATCH,
    "federated.non_iid": False,
    "mdgan.disc_steps": 1,
    "mdgan.swap_epochs": 1,
}
# FL-GAN as the paper compares with it: every device, one local step of batch b, averaged.
FEDERATED = {
    "federated.devices": DEVICES - 1,  # clients; device 0 makes N devices
    "federated.fraction": 1.0,
    "federated.local_steps": 1,
    "federated.batch_size": BATCH,
    "federated.non_iid": False,
    "federated.weighting": "fedavg",
    "federated.balanced_sampling": False,
}
DEFAULTS: dict[str, Any] = {
    "iterations": 2000,
    "seeds": [0],
    "eval_samples": 2000,
    "g_features": 64,
    "d_features": 64,
}
QUICK: dict[str, Any] = {
    "iterations": 20,
    "seeds": [0],
    "eval_samples": 256,
    "g_features": 16,
    "d_features": 16,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--iterations",
        type=int,
        help=f"generator updates of table 2's runs (default {DEFAULTS['iterations']})",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds of table 2 (default 0)")
    parser.add_argument(
        "--g-features",
        type=int,
        help=f"generator width, DCGAN's ngf (default {DEFAULTS['g_features']})",
    )
    parser.add_argument(
        "--d-features",
        type=int,
        help=f"discriminator width, DCGAN's ndf (default {DEFAULTS['d_features']})",
    )
    harness.add_tables_argument(parser, 2, "which tables to run (default: both)")
    quick = "20 iterations, seed 0, 256 samples, networks 16 wide"
    harness.add_run_arguments(parser, quick, DEFAULTS["eval_samples"])
    return harness.parse_run_args(parser, argv, DEFAULTS, QUICK)


class MdganBench(harness.Bench):
    """The runs of both tables: MD-GAN, FL-GAN (federated, E=1) and local, one DCGAN width."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        model = {
            "training.model": "dcgan",
            "training.loss": "bce",
            "training.g_features": args.g_features,
            "training.d_features": args.d_features,
        }
        super().__init__(root, data_dir=args.data_dir, eval_samples=args.eval_samples, model=model)
        self.args = args
        self._dataset: ImageDataset | None = None

    def mdgan_overrides(self, *, k: int, iterations: int, seed: int) -> dict[str, Any]:
        return {
            **MDGAN,
            "coordinator.mode": "md-gan",
            "mdgan.k": k,
            "mdgan.iterations": iterations,
            "training.seed": seed,
        }

    def mdgan(self, name: str, *, k: int, iterations: int, seed: int) -> Run:
        overrides = self.mdgan_overrides(k=k, iterations=iterations, seed=seed)
        return self.simulated(name, overrides, iterations=iterations, devices=DEVICES)

    def federated(self, name: str, *, rounds: int, seed: int) -> Run:
        overrides = {
            **FEDERATED,
            "coordinator.mode": "federated",
            "federated.rounds": rounds,
            "training.seed": seed,
        }
        return self.simulated(name, overrides, iterations=rounds, devices=DEVICES)

    def describe(self, run: Run) -> str:
        return (
            f"{run.iterations} updates, {run.images_seen:,} images in {run.wall_seconds:.0f} s "
            f"(training loop {run.loop_seconds:.0f} s, "
            f"{run.bytes_per_iteration / 1e6:,.2f} MB per iteration)"
        )

    @property
    def dataset(self) -> ImageDataset:
        if self._dataset is None:
            self._dataset = make_dataset(
                harness.DATASET, data_dir=self.args.data_dir, download=False
            )  # the training split at its natural size, as the runs load it
        return self._dataset

    def mdgan_layout(self, k: int) -> tuple[ModelConfig, int]:
        """The runs' architecture and the bytes of one md-gan device state, from the rule."""
        config = self.config(
            self.root / "unused", self.mdgan_overrides(k=k, iterations=BYTES_ITERATIONS, seed=0)
        )
        model_config = model_config_for(config, self.dataset)
        plan = plan_from_config("md-gan", config, self.dataset)
        rule = make_rule("md-gan", plan, config, model_config, self.dataset)
        generator, discriminator = build_models(model_config)
        spec = device_state_spec(rule, generator, discriminator)
        return model_config, 0 if spec is None else spec.nbytes


@dataclass
class Traffic:
    """Table 1's split of an md-gan run's bytes, per worker (device unit) and iteration."""

    k: int
    inputs_down: float  # generated batches X_g, X_d
    feedback_up: float
    state: float  # discriminator + Adam, down and up together
    paper_down: int  # 2bd floats
    paper_up: int  # bd floats

    @property
    def down_ratio(self) -> float:
        return self.inputs_down / self.paper_down

    @property
    def up_ratio(self) -> float:
        return self.feedback_up / self.paper_up

    @property
    def ok(self) -> bool:
        return abs(self.down_ratio - 1) <= TOLERANCE and abs(self.up_ratio - 1) <= TOLERANCE


def measure_traffic(bench: MdganBench, k: int) -> Traffic:
    model_config, state_bytes = bench.mdgan_layout(k)
    run = bench.mdgan(f"bytes-k{k}", k=k, iterations=BYTES_ITERATIONS, seed=0)
    units = DEVICES * BYTES_ITERATIONS
    # A device's state goes up after every unit and down before every unit but its first.
    state_down = DEVICES * (BYTES_ITERATIONS - 1) * state_bytes
    state_up = DEVICES * BYTES_ITERATIONS * state_bytes
    d = model_config.channels * model_config.image_size**2
    return Traffic(
        k=k,
        inputs_down=(run.bytes_down - state_down) / units,
        feedback_up=(run.bytes_up - state_up) / units,
        state=(state_down + state_up) / units,
        paper_down=2 * BATCH * d * FLOAT_BYTES,
        paper_up=BATCH * d * FLOAT_BYTES,
    )


def table_bytes(bench: MdganBench) -> None:
    harness.progress("table 1: bytes per iteration vs the paper")
    rows = [measure_traffic(bench, k) for k in KS]
    args = bench.args
    print(
        f"\n### 1. Bytes per worker and iteration vs the paper: N={DEVICES}, b={BATCH}, "
        f"{BYTES_ITERATIONS} iterations, DCGAN {args.g_features}/{args.d_features} wide\n"
    )
    print(
        "| k | inputs down (B) | paper 2bd (B) | ratio | feedback up (B) | paper bd (B) | ratio "
        "| device state down+up (B) | total (B) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in rows:
        total = t.inputs_down + t.feedback_up + t.state
        print(
            f"| {t.k} | {t.inputs_down:,.0f} | {t.paper_down:,} | {t.down_ratio:.3f} | "
            f"{t.feedback_up:,.0f} | {t.paper_up:,} | {t.up_ratio:.3f} | {t.state:,.0f} | "
            f"{total:,.0f} |"
        )
    print(
        "\nDevice state: each device's discriminator and its Adam moments live in the database, "
        "so any worker can serve any device; a unit downloads its device's state and uploads the "
        "new one. The paper keeps D on its worker and moves it only at swaps (every E epochs), "
        f"so it counts none of this column. Per iteration it averages (2I - 1)/I of one state "
        f"each way (I = {BYTES_ITERATIONS}: a device's first unit uploads only)."
    )
    if 1 in KS:
        print(
            "With k = 1 a device's X_g and X_d are the same batch (x.0), which a worker "
            "downloads once: bd, not the paper's 2bd."
        )
    details = "; ".join(
        f"k={t.k}: down {t.down_ratio:.3f}x, up {t.up_ratio:.3f}x of the paper" for t in rows
    )
    print(
        f"\ninputs down and feedback up within {TOLERANCE:.0%} of the paper's 2bd and bd floats: "
        f"{harness.verdict(all(t.ok for t in rows))} ({details})"
    )


def table_quality(bench: MdganBench) -> None:
    args = bench.args
    harness.progress("table 2: quality at equal generator updates")
    iterations = args.iterations
    runs: dict[str, list[Run]] = {}
    labels = {k: f"MD-GAN k={k}" + (" (ceil log2 N)" if k == K_LOG else "") for k in KS}
    fed_label = "FL-GAN (federated, E=1, all devices)"
    local_label = f"train-local (batch {BATCH})"
    for seed in args.seeds:
        for k in KS:
            run = bench.mdgan(f"mdgan-k{k}-seed{seed}", k=k, iterations=iterations, seed=seed)
            runs.setdefault(labels[k], []).append(bench.score(run))
        fed = bench.federated(f"federated-e1-seed{seed}", rounds=iterations, seed=seed)
        runs.setdefault(fed_label, []).append(bench.score(fed))
        local = bench.local(f"local-seed{seed}", steps=iterations, seed=seed, batch=BATCH)
        runs.setdefault(local_label, []).append(bench.score(local))
    seeds = " ".join(map(str, args.seeds))
    print(
        f"\n### 2. At equal generator updates: {iterations} updates, N={DEVICES}, b={BATCH}, "
        f"seeds {seeds}, DCGAN {args.g_features}/{args.d_features} wide, FID/KID on "
        f"{args.eval_samples} samples\n"
    )
    print(
        "| mode | FID mean ± std | KID mean ± std | images seen | worker bytes / iteration "
        "| per device | wall s | training loop s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, mode_runs in runs.items():
        images = statistics.fmean(r.images_seen for r in mode_runs)
        per_iteration = statistics.fmean(r.bytes_per_iteration for r in mode_runs)
        devices = mode_runs[0].devices
        simulated = per_iteration > 0
        print(
            f"| {label} | {harness.mean_std([r.fid for r in mode_runs], 2)} | "
            f"{harness.mean_std([r.kid for r in mode_runs], 4)} | {images:,.0f} | "
            f"{f'{per_iteration:,.0f}' if simulated else 'n/a'} | "
            f"{f'{per_iteration / devices:,.0f}' if simulated else 'n/a'} | "
            f"{statistics.fmean(r.wall_seconds for r in mode_runs):.0f} | "
            f"{statistics.fmean(r.loop_seconds for r in mode_runs):.0f} |"
        )
    print(
        f"\nImages seen are real images trained on: MD-GAN's discriminators and FL-GAN's devices "
        f"see N*b = {DEVICES * BATCH} per update, train-local b = {BATCH}. Worker bytes are "
        "history.csv's bytes_down + bytes_up (MD-GAN's include the device states of table 1)."
    )
    md_fid = statistics.fmean(r.fid for r in runs[labels[K_LOG]])
    fed_fid = statistics.fmean(r.fid for r in runs[fed_label])
    print(
        f"\npaper's claim, MD-GAN with k = ceil(log2 N) = {K_LOG} beats FL-GAN (federated E=1), "
        f"by FID: {harness.verdict(md_fid < fed_fid)} (MD-GAN {md_fid:.2f}, FL-GAN {fed_fid:.2f})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with harness.work_root(args.workdir, "ganfriends-mdgan-") as root:
        bench = MdganBench(args, root)
        width = f"{args.g_features}/{args.d_features}"
        print(
            f"MD-GAN on iid {harness.DATASET}, DCGAN {width} wide, CPU, "
            f"{torch.get_num_threads()} torch threads; N={DEVICES} devices, b={BATCH}, k in "
            f"{{{', '.join(map(str, KS))}}}, L={MDGAN['mdgan.disc_steps']}, "
            f"swaps every E={MDGAN['mdgan.swap_epochs']} epoch"
        )
        if 1 in args.tables:
            table_bytes(bench)
        if 2 in args.tables:
            table_quality(bench)


if __name__ == "__main__":
    main()
