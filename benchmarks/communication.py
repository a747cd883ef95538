"""The communication frontier of a class run: FID against worker bytes per image, per setting.

Every run is ``simulate --mode sync`` of Fashion-MNIST's 32x32 DCGAN on the CPU: K = 3 units of
U = 32 images per optimizer step (a class of 3 workers, each computing one unit per version;
global batch 96, micro-batch 32), ``--steps`` optimizer steps (local steps count one each), so
every setting trains on exactly the same images and noise of the one schedule. The settings
(``--settings``, default all):

* ``sync``: today's default, one exact alternating step per two versions (H = 1, float32): the
  same model as ``train-local --batch-size 96`` (bit for bit), so its FID is the local reference;
* ``sync-bf16`` / ``sync-int8``: the same with uploads in bfloat16 / int8 (stochastic rounding);
* ``H<n>[-bf16|-int8]``: ``--local-steps n`` with the outer step of ``--outer`` (default: the
  one these measurements chose, see OUTER), uploads in float32 / bfloat16 / int8;
* ``...-bf16-both`` / ``...-int8-both``: downloads rounded the same way too (``--download-dtype``).

FID and KID (ganfriends' classifier features, ``--eval-samples`` images, scored in the run every
64 optimizer steps, the evaluation seeded by the run's seed) are read at the ``--at`` steps
(default 704 and 1344: 67,584 and 129,024 images, the first multiples of 64 steps past 64k and
128k, so every H in {1, 4, 16, 64} publishes a version there). Worker bytes per image are what
``simulate`` counts crossing the database in such a class: each unit downloads what its
version changed and uploads its result in the transfer dtype. Over ``--seeds``: mean ± std.

    python benchmarks/communication.py [--settings sync H16 ...] [--seeds 0 1 2]
        [--steps 1344] [--at 704 1344] [--eval-samples 2000] [--threads 1] [--workdir DIR]
        [--plot benchmarks/results/communication.png] [--quick] [--collect DIR ...]

``--collect`` trains nothing and tabulates the runs kept by earlier calls' ``--workdir`` (settings
measured by parallel calls, one per core, make one table and one plot).

Prints markdown tables (stdout), one progress line per run (stderr). Hours on a 2-core CPU: each
run is 129k images. ``--quick`` checks the script in minutes.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness
from benchmarks.harness import Bench, mean_std
from ganfriends.training.history import read_history

UNITS, IMAGES_PER_UNIT = 3, 32
EVAL_EVERY = 64  # optimizer steps: a multiple of every H measured
# The outer step of the local-steps settings (G's; D's where it differs): chosen by these
# measurements (benchmarks/results/communication.md), not DiLoCo's Nesterov, which collapsed.
OUTER: dict[str, Any] = {"coordinator.outer_optimizer": "sgd", "coordinator.outer_lr": 1.0}
DTYPES = {"": "float32", "-bf16": "bfloat16-stochastic", "-int8": "int8"}
DEFAULTS: dict[str, Any] = {"seeds": [0, 1, 2], "steps": 1344, "at": [704, 1344],
                            "eval_samples": 2000}  # fmt: skip
QUICK: dict[str, Any] = {"seeds": [0], "steps": 64, "at": [64], "eval_samples": 256}


def settings() -> dict[str, dict[str, Any]]:
    """Every setting's overrides, by name."""
    out: dict[str, dict[str, Any]] = {}
    for suffix, dtype in DTYPES.items():
        out[f"sync{suffix}"] = {"coordinator.transfer_dtype": dtype}
    for steps in (4, 16, 64):
        for suffix, dtype in DTYPES.items():
            out[f"H{steps}{suffix}"] = {
                "coordinator.transfer_dtype": dtype, "coordinator.local_steps": steps, **OUTER,
            }  # fmt: skip
    for name, overrides in list(out.items()):
        dtype = overrides["coordinator.transfer_dtype"]
        if dtype != "float32":  # rounded both ways
            out[f"{name}-both"] = {**overrides, "coordinator.download_dtype": dtype}
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_run_arguments(parser, "1 seed, 64 steps, 256 evaluation samples", 2000)
    parser.add_argument("--settings", nargs="+", choices=list(settings()), default=None)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default 1344)")
    parser.add_argument("--at", type=int, nargs="+", help="steps whose scores the table shows")
    parser.add_argument("--plot", type=Path, help="write the FID curves and frontier here")
    parser.add_argument(
        "--collect", type=Path, nargs="+",
        help="train nothing: tabulate the finished runs kept under these --workdir folders",
    )  # fmt: skip
    args = harness.parse_run_args(parser, argv, DEFAULTS, QUICK)
    args.settings = args.settings or list(settings())
    for at in args.at:
        if at % EVAL_EVERY or at > args.steps:
            parser.error(f"--at {at}: a multiple of {EVAL_EVERY} steps, at most --steps")
    return args


@dataclass
class Measured:
    """One setting over the seeds: scores at each step of ``--at``, bytes per image."""

    name: str
    fid: dict[int, list[float]] = field(default_factory=dict)
    kid: dict[int, list[float]] = field(default_factory=dict)
    curve: dict[int, list[float]] = field(default_factory=dict)  # images seen -> FIDs
    bytes_per_image: list[float] = field(default_factory=list)


def run_one(bench: Bench, name: str, overrides: Mapping[str, Any], seed: int, args: Any) -> Any:
    """One seeded run of a setting; its history rows."""
    local_steps = int(overrides.get("coordinator.local_steps", 1))
    run = bench.simulated(
        f"{name}-seed{seed}",
        {
            **overrides,
            "coordinator.mode": "sync",
            "coordinator.images_per_work_unit": IMAGES_PER_UNIT,
            "coordinator.workunits_per_update": UNITS,
            "coordinator.max_iterations": args.steps,
            "training.micro_batch": IMAGES_PER_UNIT,
            "training.seed": seed,
            "training.eval_samples": args.eval_samples,
            # The writer's step is the version's round: one per H optimizer steps.
            "local.eval_interval": max(1, EVAL_EVERY // local_steps),
        },
        iterations=None,
        devices=UNITS,
    )
    return run, read_history(run.checkpoint.parents[1] / "history.csv")


def add_run(measured: Measured, rows: Sequence[Mapping[str, str]], at: Sequence[int]) -> None:
    """One seeded run's history: its scores at the ``at`` steps, its curve, its bytes/image."""
    batch = UNITS * IMAGES_PER_UNIT
    images_seen = int(rows[-1]["images_seen"])
    moved = sum(float(r["bytes_down"]) + float(r["bytes_up"]) for r in rows)
    measured.bytes_per_image.append(moved / images_seen)
    for row in rows:
        if not row.get("fid"):
            continue
        images = int(row["images_seen"])
        measured.curve.setdefault(images, []).append(float(row["fid"]))
        if images % batch == 0 and images // batch in at:
            measured.fid.setdefault(images // batch, []).append(float(row["fid"]))
            measured.kid.setdefault(images // batch, []).append(float(row["kid_mean"]))


def measure(bench: Bench, args: Any) -> list[Measured]:
    """Every setting, every seed."""
    out = []
    for name in args.settings:
        measured = Measured(name)
        for seed in args.seeds:
            run, rows = run_one(bench, name, settings()[name], seed, args)
            add_run(measured, rows, args.at)
            harness.progress(f"  {name} seed {seed}: {run.bytes_per_image / 1e3:.1f} kB/image")
        out.append(measured)
    return out


def collect(roots: Sequence[Path], args: Any) -> list[Measured]:
    """The finished runs kept under ``roots`` (``--workdir`` of earlier calls, e.g. settings
    measured in parallel), in ``--settings`` order; a run that did not reach ``--steps`` is
    left out."""
    found: dict[str, Measured] = {}
    for history in sorted(p for root in roots for p in root.glob("*-seed*/history.csv")):
        # Run folders are "NN-<setting>-seed<S>" (Bench.out_dir).
        name = history.parent.name.split("-", 1)[1].rsplit("-seed", 1)[0]
        rows = read_history(history)
        complete = rows and int(rows[-1]["images_seen"]) == args.steps * UNITS * IMAGES_PER_UNIT
        if name in args.settings and complete:
            add_run(found.setdefault(name, Measured(name)), rows, args.at)
    return [found[name] for name in args.settings if name in found]


def cell(values: Sequence[float] | None, digits: int) -> str:
    return "n/a" if not values else mean_std(values, digits)


def mean(values: Sequence[float] | None) -> float:
    return sum(values) / len(values) if values else math.nan


def table(results: Sequence[Measured], args: Any) -> None:
    """FID/KID at each --at step, bytes per image, and the ratios to the reference."""
    batch = UNITS * IMAGES_PER_UNIT
    reference = next((m for m in results if m.name == "sync"), None)
    heads = [f"FID @{s * batch:,} | KID @{s * batch:,}" for s in args.at]
    print(f"| setting | seeds | {' | '.join(heads)} | worker kB / image | bytes vs sync | "
          f"FID vs local @{args.at[-1] * batch:,} |")  # fmt: skip
    print("|---|" + "---:|" * (2 * len(args.at) + 4))
    for m in results:
        kb = mean(m.bytes_per_image) / 1e3
        ratio = "n/a" if reference is None else f"{mean(reference.bytes_per_image) / 1e3 / kb:.1f}x"
        last = args.at[-1]
        quality = (
            "n/a" if reference is None
            else f"{100 * (mean(m.fid.get(last)) / mean(reference.fid.get(last)) - 1):+.1f}%"
        )  # fmt: skip
        scores = [f"{cell(m.fid.get(s), 1)} | {cell(m.kid.get(s), 4)}" for s in args.at]
        runs = len(m.bytes_per_image)
        print(f"| {m.name} | {runs} | {' | '.join(scores)} | {kb:.2f} | {ratio} | {quality} |")


def plot(results: Sequence[Measured], path: Path, last: int) -> None:
    """FID curves by images seen (mean over seeds), and FID at ``last`` against kB per image."""
    plt = harness.pyplot()
    fig, (curves, frontier) = plt.subplots(1, 2, figsize=(13, 5))
    # Colour by local steps, line by the transfers' form: 13 settings stay apart.
    colours = {"sync": "C0", "H4": "C1", "H16": "C2", "H64": "C3"}
    for m in results:
        seen = sorted(m.curve)
        steps, _, form = m.name.partition("-")
        style = {"": "-", "bf16": "--", "int8": ":"}.get(form, "-.")
        colour = colours.get(steps)
        curves.plot(seen, [mean(m.curve[i]) for i in seen], marker=".", label=m.name,
                    color=colour, linestyle=style)  # fmt: skip
        if m.fid.get(last):
            frontier.scatter(mean(m.bytes_per_image) / 1e3, mean(m.fid[last]), color=colour)
            frontier.annotate(m.name, (mean(m.bytes_per_image) / 1e3, mean(m.fid[last])))
    reference = next((m for m in results if m.name == "sync" and m.fid.get(last)), None)
    if reference is not None:  # the goal: within 10% of the local reference's FID
        frontier.axhline(1.1 * mean(reference.fid[last]), linestyle="--", color="grey",
                         label="local reference + 10%")  # fmt: skip
        frontier.legend(fontsize=7)
    curves.set(xlabel="images seen", ylabel="FID (lower is better)", title="FID while training")
    curves.legend(fontsize=7)
    frontier.set(xscale="log", xlabel="worker kB per image (log)", ylabel=f"FID at step {last}",
                 title="the frontier: quality against bytes")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    harness.progress(f"plot: {path}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.collect:
        results = collect(args.collect, args)
    else:
        with harness.work_root(args.workdir, "ganfriends-communication-") as root:
            bench = Bench(root, data_dir=args.data_dir, eval_samples=args.eval_samples, model={})
            results = measure(bench, args)
    print(f"Fashion-MNIST 32x32 DCGAN, {UNITS} units of {IMAGES_PER_UNIT} images per step, "
          f"{args.steps} steps, FID/KID on "
          f"{args.eval_samples} samples (classifier features)\n")  # fmt: skip
    table(results, args)
    if args.plot is not None:
        plot(results, args.plot, args.at[-1])


if __name__ == "__main__":
    main()
