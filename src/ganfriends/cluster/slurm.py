"""``ganfriends slurm``: an sbatch script that runs a train-local command with torchrun.

One SLURM task per node runs ``torchrun``, which starts the node's training processes; the nodes
meet through torchrun's c10d rendezvous on the job's first node (the recipe of PyTorch's
"multinode training" tutorial and of itwinai's generated scripts), so no rank or address is
computed by hand. Inside, ``train-local`` detects torchrun and trains data-parallel.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ganfriends.config import SlurmConfig
from ganfriends.errors import GanError

# The script is text that sbatch and bash both read: a newline in a #SBATCH value starts a
# command of its own, a ";" or "$(...)" in the module line runs one. Each field is held to the
# syntax Slurm (or Lmod) itself gives it, so nothing but a name can get in.
_NAME = r"[A-Za-z0-9._+-]+"  # job, partition and account names as sites write them
_JOB_NAME = re.compile(_NAME)
_NAME_LIST = re.compile(rf"{_NAME}(,{_NAME})*")  # --partition=a,b: the first that can run it
# sbatch's --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds, or no limit (see `man sbatch`).
_TIME = re.compile(r"\d{1,9}(:\d{1,9}){0,2}|\d{1,9}-\d{1,9}(:\d{1,9}){0,2}|UNLIMITED|INFINITE",
                   re.IGNORECASE)  # fmt: skip
# cuda/12.1, PyTorch/2.1.2-foss-2023a, Stages/2024; never a leading "-", which `module` reads
# as one of its own options.
_MODULE = re.compile(r"[A-Za-z0-9._+/][A-Za-z0-9._+/-]*")


def module_names(modules: str) -> list[str]:
    """The names of a ``--modules`` value: split on spaces only (a tab or newline stays inside a
    name, where :func:`check_fields` refuses it)."""
    return [name for name in modules.split(" ") if name]


class SlurmFieldError(GanError):
    """A field of the sbatch script is not what Slurm accepts there."""


def check_fields(slurm: SlurmConfig) -> None:
    """Refuse a job name, partition, account, time limit or module list outside Slurm's syntax
    (one line naming the flag), before any of it is written into a script."""

    def refuse(flag: str, value: str, expected: str) -> SlurmFieldError:
        return SlurmFieldError(f"{flag} {value!r} is not {expected}")

    if not _JOB_NAME.fullmatch(slurm.job_name):
        raise refuse("--job-name", slurm.job_name, "a job name (letters, digits, . _ + -)")
    for flag, value in (("--partition", slurm.partition), ("--account", slurm.account)):
        if value is not None and not _NAME_LIST.fullmatch(value):
            raise refuse(flag, value, "a name or comma-separated names (letters, digits, . _ + -)")
    if not _TIME.fullmatch(slurm.time):
        raise refuse(
            "--time",
            slurm.time,
            "a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED)",
        )
    if slurm.modules is not None:
        names = module_names(slurm.modules)
        if not names or not all(_MODULE.fullmatch(name) for name in names):
            raise refuse(
                "--modules",
                slurm.modules,
                "module names separated by spaces (letters, digits, . _ + / -)",
            )


def processes_per_node(slurm: SlurmConfig) -> int:
    """torchrun's ``--nproc-per-node``: as asked, else one per GPU, else one."""
    return slurm.nproc_per_node or slurm.gpus_per_node or 1


def rdzv_port(slurm: SlurmConfig) -> str:
    """The rendezvous port, as the script computes it: as asked, else one of the job's own.

    A fixed default (torchrun's 29500) breaks jobs that share a node: the second job's torchrun
    finds the port taken, joins the first job's store as a client, and dies with it when the first
    job ends (seen on a real Slurm). 20000 + the job id mod 10000 stays below Linux's ephemeral
    ports (32768 and up), so no outgoing connection holds it.
    """
    if slurm.rdzv_port is not None:
        return str(slurm.rdzv_port)
    return "$((20000 + SLURM_JOB_ID % 10000))"


def render_script(slurm: SlurmConfig, train_args: Sequence[str]) -> str:
    """The sbatch script for ``ganfriends train-local TRAIN_ARGS`` on ``slurm``'s allocation.

    :class:`SlurmFieldError` for a field outside Slurm's syntax (see :func:`check_fields`).
    """
    check_fields(slurm)
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
        # Checked names already; quoted anyway, so that the line stays one command whatever
        # a later, looser check lets through.
        lines.append("module load " + " ".join(shlex.quote(m) for m in module_names(slurm.modules)))
    if slurm.venv:
        lines.append(f"source {shlex.quote(str(Path(slurm.venv) / 'bin' / 'activate'))}")
    if slurm.cpus_per_task:
        # torchrun would set 1 thread per process; share the task's cores among its processes.
        lines.append(f"export OMP_NUM_THREADS={max(1, slurm.cpus_per_task // nproc)}")
    train = shlex.join(["train-local", *train_args])
    lines += [
        "",
        "# torchrun's c10d rendezvous listens on the job's first node"
        + (", on a port of this job's own." if slurm.rdzv_port is None else "."),
        'RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"RDZV_PORT={rdzv_port(slurm)}",
        "",
        "srun --cpu-bind=none torchrun \\",
        '    --nnodes="$SLURM_JOB_NUM_NODES" \\',
        f"    --nproc-per-node={nproc} \\",
        '    --rdzv-id="$SLURM_JOB_ID" \\',
        "    --rdzv-backend=c10d \\",
        '    --rdzv-endpoint="$RDZV_HOST:$RDZV_PORT" \\',
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


def check_launcher(slurm: SlurmConfig) -> None:
    """Refuse to submit a job whose nodes would not find ``torchrun``.

    sbatch hands this environment (PATH included) to the job, so without a venv or module line
    the nodes find torchrun where this shell does, or nowhere: a ``.venv/bin/ganfriends`` run
    without activating the venv would otherwise fail only after the queue wait.
    """
    if slurm.venv is None and slurm.modules is None and shutil.which("torchrun") is None:
        raise GanError(
            "torchrun is not on PATH, so the job would not find it either: activate the "
            "virtualenv that has ganfriends, or name it with --venv"
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
