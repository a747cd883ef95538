"""train-local under the real ``torchrun``: 2 gloo processes on the CPU equal one process whose
micro-batches are their shares, weights and BatchNorm buffers included."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganfriends.training.history import read_history
from tests.acceptance.class_harness import wait_for_line
from tests.acceptance.conftest import TINY_MODEL, cli_env, resumed, run_cli, wait_for_history_rows
from tests.acceptance.test_stopping import assert_nothing_left, tagged
from tests.conftest import requires_fashion_mnist

TORCHRUN = Path(sys.executable).with_name("torchrun")

pytestmark = [
    requires_fashion_mnist,
    pytest.mark.skipif(not TORCHRUN.is_file(), reason=f"no torchrun next to {sys.executable}"),
]

RUN = ["train-local", "--batch-size", "8", "--seed", "5", "--max-steps", "3", *TINY_MODEL]
RTOL = 1e-6  # 2 processes sum gradients in another order than one process's accumulation


def torchrun(
    args: list[str], cwd: Path, *launcher: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m ganfriends ARGS`` (or other launcher flags)."""
    launch = list(launcher) or ["--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    return subprocess.run(
        [str(TORCHRUN), *launch, "-m", "ganfriends", *args],
        cwd=cwd,
        env=cli_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def checkpoint(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    data: dict[str, dict[str, torch.Tensor]] = torch.load(
        run / "checkpoints" / "latest.pt", weights_only=True
    )
    return data


def assert_same_model(a: Path, b: Path) -> None:
    """Weights and every BatchNorm buffer (num_batches_tracked exactly) agree to RTOL."""
    ca, cb = checkpoint(a), checkpoint(b)
    for key in ("generator_state_dict", "discriminator_state_dict"):
        assert ca[key].keys() == cb[key].keys()
        for name, value in ca[key].items():
            other = cb[key][name]
            if value.dtype.is_floating_point:
                scale = max(float(other.abs().max()), 1e-12)
                assert float((value - other).abs().max()) <= RTOL * scale, f"{key}.{name}"
            else:
                assert torch.equal(value, other), f"{key}.{name}"
    assert ca["step"] == cb["step"]


def two_processes_equal_one(
    workdir: Path, rule: str, *strategy: str
) -> subprocess.CompletedProcess[str]:
    """Train "one" in one process with micro-batches of 4 and "two" under torchrun with
    ``strategy``: the same model, one history of global counts, plain names in the checkpoint.
    The torchrun run's result."""
    one = run_cli(
        [*RUN, "--update-rule", rule, "--micro-batch", "4", "--output-dir", "one"], workdir
    )
    assert one.returncode == 0, one.stderr
    two = torchrun([*RUN, *strategy, "--update-rule", rule, "--output-dir", "two"], workdir)
    assert two.returncode == 0, two.stderr

    assert_same_model(workdir / "one", workdir / "two")
    assert two.stdout.count("done: step 3") == 1
    rows_one = read_history(workdir / "one" / "history.csv")
    rows_two = read_history(workdir / "two" / "history.csv")
    assert [r["images_seen"] for r in rows_two] == ["8", "16", "24"]  # global counts, one writer
    for r1, r2 in zip(rows_one, rows_two, strict=True):
        assert float(r1["d_loss"]) == pytest.approx(float(r2["d_loss"]), rel=1e-4)
    saved = checkpoint(workdir / "two")
    for key in ("generator_state_dict", "discriminator_state_dict"):
        assert "module." not in "".join(saved[key])
    return two


def resume_both_ways(
    workdir: Path, *strategy: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """4 steps in one process ("ref"); 2 under torchrun with ``strategy`` then 2 in one process
    ("a"); 2 in one process then 2 under torchrun ("b"): a and b end with ref's model. The two
    resumed runs' results (one process, torchrun)."""
    straight = run_cli(
        [*RUN, "--micro-batch", "4", "--max-steps", "4", "--output-dir", "ref"], workdir
    )
    assert straight.returncode == 0, straight.stderr

    first = torchrun([*RUN, *strategy, "--max-steps", "2", "--output-dir", "a"], workdir)
    assert first.returncode == 0, first.stderr
    into_one = resumed("a", 4, workdir)
    assert_same_model(workdir / "ref", workdir / "a")

    first = run_cli([*RUN, "--micro-batch", "4", "--max-steps", "2", "--output-dir", "b"], workdir)
    assert first.returncode == 0, first.stderr
    into_two = torchrun(
        ["train-local", *strategy, "--resume", "b/checkpoints/latest.pt", "--output-dir", "b",
         "--max-steps", "4"], workdir,
    )  # fmt: skip
    assert into_two.returncode == 0, into_two.stderr
    assert_same_model(workdir / "ref", workdir / "b")
    assert [int(r["step"]) for r in read_history(workdir / "b" / "history.csv")] == [1, 2, 3, 4]
    return into_one, into_two


def drawn_from(workdir: Path, run: str) -> None:
    """``generate`` draws from ``run``'s checkpoint."""
    drawn = run_cli(
        ["generate", "--checkpoint", f"{run}/checkpoints/latest.pt", "--num", "4"], workdir
    )
    assert drawn.returncode == 0, drawn.stderr


@pytest.mark.parametrize("rule", ["alternating", "simultaneous"])
def test_two_processes_equal_one_process_with_their_micro_batches(workdir: Path, rule: str) -> None:
    two = two_processes_equal_one(workdir, rule)
    assert "2 processes (gloo)" in two.stdout


def test_two_nodes_on_localhost_meet_through_a_c10d_rendezvous(workdir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [*RUN, "--output-dir", "nodes"]
    launch = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "ganfriends-test"]  # fmt: skip
    nodes = [
        subprocess.Popen(
            [str(TORCHRUN), *launch, "--node-rank", str(rank), "-m", "ganfriends", *args],
            cwd=workdir,
            env=cli_env(workdir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=180)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    one = run_cli([*RUN, "--micro-batch", "4", "--output-dir", "one"], workdir)
    assert one.returncode == 0, one.stderr
    assert_same_model(workdir / "one", workdir / "nodes")


def test_resume_moves_between_two_processes_and_one(workdir: Path) -> None:
    # The checkpoint of two processes resumes in one, which adopts its micro-batch of 4.
    into_one, _ = resume_both_ways(workdir)
    assert "micro-batch 4" in into_one.stdout
    drawn_from(workdir, "b")


def test_a_global_batch_that_does_not_split_is_one_clear_error(workdir: Path) -> None:
    result = torchrun(
        ["train-local", "--batch-size", "7", *TINY_MODEL, "--output-dir", "odd"], workdir
    )
    assert result.returncode != 0
    assert (
        "error: --batch-size 7 (the global batch) does not split evenly over the 2 processes "
        "of this job: choose a multiple of 2" in result.stderr
    )
    assert not (workdir / "odd").exists()


def test_ctrl_c_to_torchrun_stops_every_process_after_one_step_and_rank_0_saves(
    workdir: Path,
) -> None:
    proc = subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "ganfriends",
         "train-local", "--batch-size", "8", *TINY_MODEL, "--epochs", "1", "--output-dir", "run"],
        cwd=workdir, env=cli_env(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    history = workdir / "run" / "history.csv"
    wait_for_history_rows(history, 3, proc)
    proc.send_signal(signal.SIGINT)  # torchrun passes it on to both processes (SIGTERM)
    output, _ = proc.communicate(timeout=90)
    assert "continue with: ganfriends train-local --resume" in output
    saved: dict[str, int] = torch.load(
        workdir / "run" / "checkpoints" / "latest.pt", weights_only=True
    )
    rows = read_history(history)
    assert saved["step"] >= 2 and int(rows[-1]["step"]) == saved["step"]


def test_ranks_do_not_outlive_a_killed_torchrun(workdir: Path) -> None:
    env, tag = tagged(cli_env(workdir))
    launcher = subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
         "-m", "ganfriends", *RUN, "--max-steps", "100000", "--output-dir", "killed"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_line(launcher, "2 processes (gloo)")
        launcher.send_signal(signal.SIGKILL)
        launcher.communicate(timeout=30)
        # Each rank got SIGTERM from the kernel: a warm stop, then exit.
        assert_nothing_left(tag, workdir / "killed", timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
