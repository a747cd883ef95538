"""``ganfriends slurm``: an sbatch script that runs a train-local command with torchrun.

One SLURM task per node runs ``torchrun``, which starts the node's training processes; the nodes
meet through torchrun's c10d rendezvous on the job's first node (the recipe of PyTorch's
"multinode training" tutorial and of itwinai's generated scripts), so no rank or address is
computed by hand. Inside, ``train-local`` detects torchrun and trains data-parallel.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ganfriends.config import SlurmConfig
from ganfriends.errors import GanError


def processes_per_node(slurm: SlurmConfig) -> int:
    """torchrun's ``--nproc-per-node``: as asked, else one per GPU, else one."""
    return slurm.nproc_per_node or slurm.gpus_per_node or 1


def render_script(slurm: SlurmConfig, train_args: Sequence[str]) -> str:
    """The sbatch script for ``ganfriends train-local TRAIN_ARGS`` on ``slurm``'s allocation."""
    nproc = processes_per_node(slurm)
    world = slurm.nodes * nproc
    directives = [
        f"--job-name={slurm.job_name}",
        f"--nodes={slurm.nodes}",
        "--ntasks-per-node=1",  # one torchrun per node; it starts the node's processes
    ]
    if slurm.gpus_per_node:
        directives.append(f"--gpus-per-node={slurm.gpus_per_node}")
    if slurm.cpus_per_task:
        directives.append(f"--cpus-per-task={slurm.cpus_per_task}")
    directives.append(f"--time={slurm.time}")
    if slurm.partition:
        directives.append(f"--partition={slurm.partition}")
    if slurm.account:
        directives.append(f"--account={slurm.account}")
    directives.append(f"--output={slurm.job_name}-%j.out")

    lines = [
        "#!/bin/bash",
        f"# Written by `ganfriends slurm`: train-local on {slurm.nodes} node(s) x {nproc} "
        f"process(es) = {world}, data-parallel under torchrun.",
        *(f"#SBATCH {d}" for d in directives),
        "",
        "set -eo pipefail",  # no -u: environment-module scripts read unset variables
    ]
    if slurm.modules:
        lines.append(f"module load {slurm.modules}")
    if slurm.venv:
        lines.append(f"source {shlex.quote(str(Path(slurm.venv) / 'bin' / 'activate'))}")
    if slurm.cpus_per_task:
        # torchrun would set 1 thread per process; share the task's cores among its processes.
        lines.append(f"export OMP_NUM_THREADS={max(1, slurm.cpus_per_task // nproc)}")
    train = shlex.join(["train-local", *train_args])
    lines += [
        "",
        "# torchrun's c10d rendezvous listens on the job's first node.",
        'RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "",
        "srun --cpu-bind=none torchrun \\",
        '    --nnodes="$SLURM_JOB_NUM_NODES" \\',
        f"    --nproc-per-node={nproc} \\",
        '    --rdzv-id="$SLURM_JOB_ID" \\',
        "    --rdzv-backend=c10d \\",
        f'    --rdzv-endpoint="$RDZV_HOST:{slurm.rdzv_port}" \\',
        f"    -m ganfriends {train}",
        "",
    ]
    return "\n".join(lines)


def check_train_args(train_args: Sequence[str], batch_size: int, slurm: SlurmConfig) -> None:
    """Refuse a global batch that the job's processes cannot share (before a queue wait)."""
    world = slurm.nodes * processes_per_node(slurm)
    if batch_size % world:
        raise GanError(
            f"--batch-size {batch_size} does not split evenly over the job's {world} processes "
            f"({slurm.nodes} node(s) x {processes_per_node(slurm)}): choose a multiple of {world}"
        )


def submit(script: Path) -> str:
    """Submit ``script`` with sbatch; returns the job id."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise GanError(
            f"sbatch not found: run this on the cluster's login node (the script is {script})"
        )
    result = subprocess.run(
        [sbatch, "--parsable", str(script)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        why = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[0]
        raise GanError(f"sbatch refused {script}: {why}")
    return result.stdout.strip().split(";")[0]
