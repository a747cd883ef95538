"""``ganfriends slurm --submit`` on a real Slurm: a private one-node cluster (Debian's slurm-wlm,
which ``make test`` installs when it may) runs the generated script, ``srun torchrun`` and all."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ganfriends.training.history import read_history
from tests.acceptance.conftest import TINY_MODEL, cli_env
from tests.acceptance.slurm_cluster import SlurmCluster, missing_programs, one_node_cluster
from tests.conftest import requires_fashion_mnist
from tests.waiting import wait_until

pytestmark = [
    requires_fashion_mnist,
    pytest.mark.skipif(
        bool(missing_programs()),
        reason=f"no {', '.join(missing_programs())}: Debian's slurm-wlm (make test installs it)",
    ),
    pytest.mark.slow,
]

TRAIN = ["train-local", "--dataset", "fashion-mnist", "--batch-size", "8", "--seed", "5",
         *TINY_MODEL]  # fmt: skip
JOB_TIMEOUT = 120  # a 3-step job takes ~15 s on 2 busy cores
# The job runs this interpreter's environment, as a user's --venv would on a cluster.
VENV = ["--venv", sys.prefix] if sys.prefix != sys.base_prefix else []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SlurmCluster]:
    with one_node_cluster(tmp_path / "slurm") as running:
        yield running


def submit(cluster: SlurmCluster, workdir: Path, name: str, slurm: list[str], steps: int) -> str:
    """``ganfriends slurm --submit`` of a train-local run into ``workdir/name``; the job id."""
    submitted = subprocess.run(
        [sys.executable, "-m", "ganfriends", "slurm", "--job-name", name, "--script",
         f"{name}.sbatch", "--time", "00:05:00", *VENV, *slurm, "--submit",
         "--", *TRAIN, "--max-steps", str(steps), "--output-dir", name],
        cwd=workdir,
        env={**cli_env(workdir), "SLURM_CONF": str(cluster.conf)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = re.search(r"as job (\d+)", submitted.stdout)
    assert job is not None, submitted.stdout
    return job[1]


def job_output(workdir: Path, name: str, job_id: str) -> str:
    output = workdir / f"{name}-{job_id}.out"  # the script's --output=NAME-%j.out
    return output.read_text() if output.exists() else "(no job output yet)"


def wait_until_training(cluster: SlurmCluster, workdir: Path, name: str, job_id: str) -> None:
    """Wait for the run's header line, printed once its processes met at the rendezvous."""

    def training() -> bool:
        if "processes (gloo)" in job_output(workdir, name, job_id):
            return True
        state = cluster.job_state(job_id)
        assert state in ("PENDING", "RUNNING"), f"{state}\n{job_output(workdir, name, job_id)}"
        return False

    wait_until(
        training, lambda: f"{name} to train\n{cluster.logs()}", timeout=JOB_TIMEOUT, interval=0.5
    )


def test_a_submitted_two_process_cpu_job_trains_and_checkpoints(
    cluster: SlurmCluster, workdir: Path
) -> None:
    job = submit(cluster, workdir, "gan", ["--nproc-per-node", "2", "--cpus-per-task", "2"], 3)

    state = cluster.wait_for(job, timeout=JOB_TIMEOUT)
    log = job_output(workdir, "gan", job)
    assert state == "COMPLETED", f"{state}\n{log}\n{cluster.logs()}"
    assert "2 processes (gloo)" in log and log.count("done: step 3") == 1, log
    rows = read_history(workdir / "gan" / "history.csv")
    assert [r["images_seen"] for r in rows] == ["8", "16", "24"]  # global counts, one writer
    saved = torch.load(workdir / "gan" / "checkpoints" / "latest.pt", weights_only=True)
    assert saved["step"] == 3


def test_a_job_outlives_a_neighbour_that_shared_its_node(
    cluster: SlurmCluster, workdir: Path
) -> None:
    # With one fixed rendezvous port, the second job's torchrun joins the first job's c10d
    # store (its own port is taken) and dies when the first job ends.
    neighbour = submit(cluster, workdir, "neighbour", ["--cpus-per-task", "1"], 100_000)
    wait_until_training(cluster, workdir, "neighbour", neighbour)
    ours = submit(cluster, workdir, "ours", ["--cpus-per-task", "1"], 200)
    wait_until_training(cluster, workdir, "ours", ours)

    cluster.cancel(neighbour)
    assert cluster.wait_for(neighbour, timeout=30) == "CANCELLED"
    assert cluster.job_state(ours) != "COMPLETED", "ours ended before its neighbour: more steps"
    state = cluster.wait_for(ours, timeout=JOB_TIMEOUT)
    log = job_output(workdir, "ours", ours)
    assert state == "COMPLETED", f"{state}\n{log}"
    assert "done: step 200" in log
