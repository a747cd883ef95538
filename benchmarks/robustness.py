"""One hostile worker of five: where the class run ends, with and without screening.

Setting: the class mode's rule (``sync``: K = 5 units of 64 images per update, micro-batch 64),
ganfriends' DCGAN ``--features`` wide, Fashion-MNIST, CPU, run in one process by ``simulate`` —
which screens each version's results exactly as the coordinator does (``rules/screening.py``).
Units go to five workers in turn (unit i to worker i mod 5); worker 4 is hostile and changes every
result it uploads, staying inside what validation on arrival accepts (finite, |x| <= 1e6):

- ``scale``: every gradient x1000 (the issue's upload "of norm 1, 1000x honest");
- ``flip``: every gradient x-10 (it pulls the mean backwards);
- ``zero``: all-zero gradients: without screening it earns credit and drags the mean 20% to zero
  (screening refuses it and the unit is computed again by another worker, as in a class run;
  the row with screening off shows what that refusal is worth).

Each attack runs with screening off (``--clip-factor 0``) and at each ``--factors`` value; the
honest run (at the default factor) is the reference. One markdown table goes to stdout: final
FID and KID (one evaluator, ``--eval-samples`` generated vs held-out test images), groups clipped,
and the largest ratio of an honest result's norm to its version's median seen in the honest run
(how far honest results stay from the bound).

    python benchmarks/robustness.py [--updates 150] [--features 16] [--factors 10 3]
        [--eval-samples 1000] [--seed 0] [--threads 1] [--workdir DIR] [--quick]

``--quick`` (20 updates, 256 samples) checks the script end to end in a minute or two.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ganfriends.aggregate import group_norms, lower_median
from ganfriends.config import Config
from ganfriends.rules.base import Unit, UnitResult
from ganfriends.training.simulate import simulate

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    NEVER,
    Scorer,
    add_run_arguments,
    parse_run_args,
    progress,
    run_config,
    work_root,
)

WORKERS = 5
HOSTILE = WORKERS - 1
UNITS_PER_UPDATE = 5
IMAGES_PER_UNIT = 64
ATTACKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "scale": lambda t: t * 1000,
    "flip": lambda t: t * -10,
    "zero": torch.zeros_like,
}
DEFAULTS: dict[str, Any] = {"updates": 150, "eval_samples": 1000}
QUICK: dict[str, Any] = {"updates": 20, "eval_samples": 256}


@dataclass
class Outcome:
    label: str
    attack: str
    factor: float
    seconds: float
    clipped: int
    checkpoint: Path
    fid: float = float("nan")
    kid: float = float("nan")
    worst_honest_ratio: float = float("nan")


@dataclass
class Recorder:
    """The tamper hook: attacks worker 4's results and records honest norms per version."""

    attack: str | None
    norms: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    calls: int = 0

    def __call__(self, unit: Unit, result: UnitResult) -> UnitResult:
        # simulate calls this for each unit of a version, version after version. Not the unit's
        # index // K: with the alternating rule, a step's D and G units interleave their indices.
        version = self.calls // UNITS_PER_UPDATE
        self.calls += 1
        if self.attack is None or unit.index % WORKERS != HOSTILE:
            self.norms.setdefault(version, []).append(group_norms(result.parameters))
            return result
        change = ATTACKS[self.attack]
        return replace(result, parameters={k: change(v) for k, v in result.parameters.items()})

    def worst_ratio(self) -> float:
        """The largest norm / lower median of any group in any version (honest results only)."""
        worst = 0.0
        for norms in self.norms.values():
            for group in norms[0]:
                values = [n[group] for n in norms]
                worst = max(worst, max(values) / lower_median(values))
        return worst


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--updates", type=int, help="updates per run (default 150)")
    parser.add_argument("--features", type=int, default=16, help="G and D width (default 16)")
    parser.add_argument("--factors", type=float, nargs="+", default=[10.0, 3.0],
                        help="clip factors to try against each attack (default 10 3)")  # fmt: skip
    parser.add_argument("--attacks", nargs="+", choices=list(ATTACKS), default=list(ATTACKS))
    parser.add_argument("--seed", type=int, default=0)
    add_run_arguments(parser, "20 updates, 256 samples", DEFAULTS["eval_samples"])
    return parse_run_args(parser, None, DEFAULTS, QUICK)


def run_one(args: argparse.Namespace, root: Path, attack: str | None, factor: float) -> Outcome:
    label = f"{attack or 'honest'}, clip {factor:g}" if factor else f"{attack or 'honest'}, off"
    out = root / label.replace(", ", "-").replace(" ", "")
    overrides: dict[str, Any] = {
        "coordinator.mode": "sync",
        "coordinator.clip_factor": factor,
        "coordinator.max_iterations": args.updates,
        "coordinator.sample_interval": NEVER,
        "training.images_per_work_unit": IMAGES_PER_UNIT,
        "training.workunits_per_update": UNITS_PER_UPDATE,
        "training.micro_batch": IMAGES_PER_UNIT,
        "training.g_features": args.features,
        "training.d_features": args.features,
        "training.seed": args.seed,
    }
    config = run_config(out, args.data_dir, overrides)
    recorder = Recorder(attack)
    log = io.StringIO()
    start = time.monotonic()
    result = simulate(
        config,
        console=Console(file=log, width=200),
        tamper=recorder,
        students=lambda unit: f"worker {unit.index % WORKERS}",  # one vote per worker
    )
    seconds = time.monotonic() - start
    # Not version == updates: with the alternating rule (the default) a step is two versions.
    if result.stopped_early:
        raise SystemExit(f"{label}: stopped at version {result.version}")
    clipped = sum("clipped" in line for line in log.getvalue().splitlines())
    outcome = Outcome(label, attack or "none", factor, seconds, clipped, result.latest_checkpoint)
    if attack is None:
        outcome.worst_honest_ratio = recorder.worst_ratio()
    progress(f"{label}: {args.updates} updates in {seconds:.0f} s, {clipped} groups clipped")
    return outcome


def main() -> None:
    args = parse_args()
    with work_root(args.workdir, "ganfriends-robustness-") as root:
        runs = [run_one(args, root, None, Config().coordinator.clip_factor)]
        for attack in args.attacks:
            # Zeros are never clipped (norm 0): the coordinator refuses them before screening.
            for factor in (0.0,) if attack == "zero" else (0.0, *args.factors):
                runs.append(run_one(args, root, attack, factor))
        scorer = Scorer(args.data_dir, args.eval_samples)
        for run in runs:
            run.fid, run.kid = scorer.fid_kid(run.checkpoint)
    images = args.updates * UNITS_PER_UPDATE * IMAGES_PER_UNIT
    print(
        f"One hostile worker of {WORKERS} (every 5th unit), sync rule, K={UNITS_PER_UPDATE} x "
        f"{IMAGES_PER_UNIT} images, {args.updates} updates ({images:,} images), DCGAN "
        f"{args.features} wide, seed {args.seed}, FID/KID on {args.eval_samples} samples\n"
    )
    print("| attack | screening | FID | KID | groups clipped | seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for run in runs:
        screening = f"clip {run.factor:g}x median" if run.factor else "off"
        print(f"| {run.attack} | {screening} | {run.fid:.1f} | {run.kid:.4f} | {run.clipped} "
              f"| {run.seconds:.0f} |")  # fmt: skip
    print(
        f"\nHonest run: the largest norm / version median of any group was "
        f"{runs[0].worst_honest_ratio:.2f} (the bound is the clip factor)."
    )


if __name__ == "__main__":
    main()
