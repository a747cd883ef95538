"""FID against images seen for the two update rules of a class run (issue #12, item 1).

Each rule runs as a real class: an embedded PostgreSQL, ``ganfriends coordinator`` and
``ganfriends worker`` processes, Fashion-MNIST 32x32, K units of U images per step (batch K*U,
128 by default as in the reference), micro-batch 32, seed 11. The coordinator scores its
generator every ``--eval-every`` steps (2,000 samples, ganfriends' classifier features, as
``fid_baseline.py``), and the scores are read back from the database.

    python benchmarks/class_rules.py [--steps 1000] [--eval-every 250] [--workers 1]
        [--variants alternating simultaneous alternating:bfloat16]

A variant is ``RULE[:TRANSFER_DTYPE]`` (``--update-rule``, ``--transfer-dtype``).

Prints a markdown table (FID and KID per rule at each evaluated step) and writes
``benchmarks/results/class_rules.md`` and ``class_rules.png``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ganfriends.db import Database, EmbeddedPostgres, migrate

if not __package__:  # run by path, as `python benchmarks/NAME.py`: import the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import pyplot, save_figure

RESULTS = Path(__file__).resolve().parent / "results"
RULES = ("alternating", "simultaneous")
DTYPES = ("float32", "bfloat16")


def variant(text: str) -> str:
    """``RULE[:DTYPE]``, checked."""
    rule, _, dtype = text.partition(":")
    if rule not in RULES or (dtype and dtype not in DTYPES):
        raise argparse.ArgumentTypeError(f"not RULE[:DTYPE]: {text!r}")
    return text


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--unit", type=int, default=32, help="images per work unit")
    parser.add_argument("--units", type=int, default=4, help="work units per step")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--variants", nargs="+", type=variant, default=list(RULES))
    parser.add_argument("--out", type=Path, default=RESULTS / "class_rules.md")
    return parser.parse_args()


def start_worker(cli: list[str], url: str, name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A ``ganfriends worker`` process on the CPU, its output discarded."""
    return subprocess.Popen(
        [*cli, "worker", "--db", url, "--name", name, "--device", "cpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def run_class(args: argparse.Namespace, name: str, url: str, out: Path) -> float:
    """One class run of variant ``name`` to completion; returns its wall-clock seconds."""
    rule, _, dtype = name.partition(":")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANFRIENDS_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(args.threads))
    cli = [sys.executable, "-m", "ganfriends"]
    coordinator = subprocess.Popen(
        [*cli, "coordinator", "--db", url, "--new-run", "--output-dir", str(out),
         "--update-rule", rule, "--transfer-dtype", dtype or "float32",
         "--images-per-work-unit", str(args.unit),
         "--workunits-per-update", str(args.units), "--micro-batch", "32",
         "--max-iterations", str(args.steps), "--seed", str(args.seed),
         "--eval-interval", str(args.eval_every), "--eval-samples", str(args.eval_samples),
         "--sample-interval", str(args.eval_every), "--epochs", "100"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert coordinator.stdout is not None
    start = time.monotonic()
    workers: list[subprocess.Popen[str]] = []
    for line in coordinator.stdout:
        if "FID" in line or "new run" in line:
            print(f"  [{name}] {line.rstrip()}", flush=True)
        if "new run" in line and not workers:
            workers = [start_worker(cli, url, f"bench-{i}", env) for i in range(args.workers)]
    code = coordinator.wait()
    for worker in workers:
        worker.wait(timeout=120)
    if code != 0:
        raise SystemExit(f"the {name} coordinator exited with {code}")
    return time.monotonic() - start


def scores(db: Database) -> list[dict[str, float]]:
    """The latest run's evaluations (version, FID, KID), in version order."""
    run = db.fetch_one("status_latest_run")
    assert run is not None
    return [dict(r) for r in db.fetch_all("fid_history", run_id=int(run["id"]))]


def plot(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for rule, points in curves.items():
        ax.plot([p[0] / 1000 for p in points], [p[1] for p in points], marker="o", label=rule)
    ax.set_xlabel("images seen (thousands)")
    ax.set_ylabel("FID (classifier features)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    save_figure(plt, fig, path)


def main() -> None:
    args = parse_args()
    batch = args.unit * args.units
    curves: dict[str, list[tuple[int, float]]] = {}
    table: dict[str, dict[int, tuple[float, float]]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ganfriends-class-rules-") as root:
        server = EmbeddedPostgres(Path(root) / "pg", durable=False)
        url = server.start().local_url()
        try:
            for rule in args.variants:
                with Database(url, max_size=1) as db:
                    migrate(db)
                print(f"{rule}: {args.steps} steps of {args.units} units x {args.unit} images")
                seconds[rule] = run_class(args, rule, url, Path(root) / rule.replace(":", "-"))
                with Database(url, max_size=1) as db:
                    rows = scores(db)
                per_step = 2 if rule.startswith("alternating") else 1
                table[rule] = {
                    int(r["version"]) // per_step: (float(r["fid"]), float(r["kid_mean"]))
                    for r in rows
                }
                curves[rule] = [(step * batch, fid) for step, (fid, _) in table[rule].items()]
        finally:
            server.stop()

    steps = sorted({s for t in table.values() for s in t})
    lines = [
        f"Class runs, Fashion-MNIST 32x32, {args.units} units x {args.unit} images per step "
        f"(batch {batch}), micro-batch 32, seed {args.seed}, {args.workers} worker(s); FID/KID "
        f"on {args.eval_samples} samples (classifier features).",
        "",
        "| step | images | " + " | ".join(f"{r} FID | {r} KID" for r in table) + " |",
        "|---:|---:|" + "---:|---:|" * len(table),
    ]
    for step in steps:
        cells = []
        for rule in table:
            fid, kid = table[rule].get(step, (float("nan"), float("nan")))
            cells.append(f"{fid:.1f} | {kid:.2f}")
        lines.append(f"| {step} | {step * batch:,} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Wall clock: " + ", ".join(f"{rule} {seconds[rule] / 60:.1f} min" for rule in seconds)
    )
    text = "\n".join(lines)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    plot(curves, args.out.with_suffix(".png"), f"class run, batch {batch}: FID vs images")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
