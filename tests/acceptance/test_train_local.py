from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ganfriends.training.checkpoint import REQUIRED_KEYS
from ganfriends.training.history import read_history
from tests.acceptance.class_harness import assert_same_model
from tests.acceptance.conftest import (
    TINY_MODEL,
    cli_env,
    load_checkpoint,
    resumed,
    run_cli,
    train_resume_generate,
    wait_for_history_rows,
)
from tests.conftest import requires_fashion_mnist

pytestmark = requires_fashion_mnist

TRAIN = [
    "train-local",
    "--dataset",
    "fashion-mnist",
    "--batch-size",
    "16",
    "--seed",
    "3",
    *TINY_MODEL,
]


def test_train_resume_generate(workdir: Path) -> None:
    _, checkpoint = train_resume_generate(workdir, TRAIN, steps=4, resumed_steps=7, tiles=3)
    assert set(REQUIRED_KEYS) <= set(checkpoint)
    assert (workdir / "run" / "samples" / "latest.png").is_file()
    assert (workdir / "run" / "curves.png").is_file()
    steps = [int(row["step"]) for row in read_history(workdir / "run" / "history.csv")]
    assert steps == list(range(1, 8))


def test_resumed_run_ends_where_an_uninterrupted_run_would(workdir: Path) -> None:
    straight = run_cli([*TRAIN, "--output-dir", "straight", "--max-steps", "6"], workdir)
    assert straight.returncode == 0, straight.stderr
    part = run_cli([*TRAIN, "--output-dir", "parts", "--max-steps", "3"], workdir)
    assert part.returncode == 0, part.stderr
    resumed("parts", 6, workdir)
    assert_same_model(workdir, "parts", "straight")


def test_first_ctrl_c_saves_the_finished_steps_and_exits(workdir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganfriends", *TRAIN, "--output-dir", "run", "--epochs", "1"],
        cwd=workdir,
        env=cli_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    history = workdir / "run" / "history.csv"
    wait_for_history_rows(history, 3, proc)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "continue with: ganfriends train-local --resume" in output
    checkpoint = load_checkpoint(workdir / "run" / "checkpoints" / "latest.pt")
    assert isinstance(checkpoint["step"], int) and checkpoint["step"] >= 2
    rows = read_history(history)
    assert int(rows[-1]["step"]) == checkpoint["step"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train-local", "--dataset", "svhn"], "invalid config: data.dataset must be one of"),
        (["train-local", "--dataset", "folder", "--dataset-path", "nowhere"], "nowhere"),
        (["train-local", "--batch-size", "0"], "training.batch_size must be >= 1"),
        (["train-local", "--lr", "fast"], "training.learning_rate must be a number"),
        (["generate", "--checkpoint", "missing.pt"], "missing.pt does not exist"),
        (["train-local", "--resume", "garbage.pt"], "cannot read checkpoint garbage.pt"),
        (
            ["download-celeba", "--dest", "celeba", "--url", "http://127.0.0.1:9/celeba.zip"],
            "img_align_celeba.zip",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_a_non_zero_exit(
    workdir: Path, args: list[str], message: str
) -> None:
    (workdir / "garbage.pt").write_bytes(b"\x00not a checkpoint")
    result = run_cli(args, workdir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


def test_verbose_flag_shows_the_traceback(workdir: Path) -> None:
    result = run_cli(["-v", "generate", "--checkpoint", "missing.pt"], workdir)
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_missing_dataset_offline_says_how_to_get_it(workdir: Path) -> None:
    result = run_cli(
        ["train-local", "--dataset", "fashion-mnist", "--dataset-path", "empty"], workdir
    )
    assert result.returncode == 1
    assert "empty" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_refuses_to_overwrite_an_existing_run(workdir: Path) -> None:
    assert run_cli([*TRAIN, "--output-dir", "run", "--max-steps", "1"], workdir).returncode == 0
    again = run_cli([*TRAIN, "--output-dir", "run", "--max-steps", "1"], workdir)
    assert again.returncode == 1
    assert "--resume" in again.stderr


def test_python_dash_m_and_console_script_agree(workdir: Path) -> None:
    script = Path(sys.executable).with_name("ganfriends")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "train-local" in result.stdout


def test_train_local_records_sample_quality_every_n_steps(
    workdir: Path, full_features_data_dir: Path
) -> None:
    env = cli_env(workdir) | {"GANFRIENDS_DATA_DIR": str(full_features_data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "ganfriends", *TRAIN, "--output-dir", "run", "--max-steps", "4",
         "--eval-interval", "2", "--eval-samples", "64"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = read_history(workdir / "run" / "history.csv")
    assert [bool(r["fid"]) for r in rows] == [False, True, False, True]
    assert float(rows[1]["fid"]) > 0 and 0 <= float(rows[3]["precision"]) <= 1
    with Image.open(workdir / "run" / "curves.png") as curves:
        assert curves.size[0] > 1500  # the FID panel was added

    scored = subprocess.run(
        [sys.executable, "-m", "ganfriends", "eval", "--checkpoint", "run/checkpoints/latest.pt",
         "--num-samples", "200", "--json"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["num_samples"] == 200 and report["fid"] > 0
    assert report["features"]["test_accuracy"] >= 0.88
