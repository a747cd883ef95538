"""``ganfriends slurm``: the sbatch scripts it writes, against golden files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ganfriends.cli import main
from ganfriends.cluster.slurm import SlurmFieldError, render_script
from ganfriends.config import SlurmConfig

GOLDEN = Path(__file__).parent / "golden"
TWO_NODES = [
    "--nodes", "2", "--gpus-per-node", "4", "--cpus-per-task", "32", "--time", "01:59:00",
    "--partition", "batch", "--account", "intertwin", "--job-name", "gan-celeba",
    "--modules", "Stages/2024 GCC OpenMPI CUDA/12 Python", "--venv", "/p/project/me/.venv",
]  # fmt: skip
TRAIN = ["--", "train-local", "--dataset", "celeba", "--dataset-path", "/p/data/celeba",
         "--batch-size", "256", "--epochs", "15"]  # fmt: skip


def preview(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["slurm", *args, "--no-submit", *TRAIN]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("golden", "args"),
    [("slurm_1node.sbatch", []), ("slurm_2nodes.sbatch", TWO_NODES)],
)
@pytest.mark.usefixtures("here")
def test_the_script_matches_its_golden_file(
    golden: str,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    script = preview(args, capsys)
    if os.environ.get("UPDATE_GOLDEN"):  # regenerate: UPDATE_GOLDEN=1 pytest ...
        (GOLDEN / golden).write_text(script)
    assert script == (GOLDEN / golden).read_text()
    assert not (tmp_path / "ganfriends.sbatch").exists()  # a preview writes nothing


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runs in its tmp_path: no config.yaml of the developer's."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_script_is_valid_bash() -> None:
    script = render_script(SlurmConfig(nodes=2, venv="my env"), ["--epochs", "1"])
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert "source 'my env/bin/activate'" in script


@pytest.mark.usefixtures("here")
def test_the_slurm_section_of_a_config_file_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text("slurm:\n  nodes: 2\n  partition: gpu\n")
    script = preview(["--partition", "cpu"], capsys)
    assert "#SBATCH --nodes=2\n" in script and "#SBATCH --partition=cpu\n" in script


@pytest.mark.usefixtures("here")
def test_without_no_submit_the_script_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["slurm", "--script", "jobs/train.sbatch", *TRAIN]) == 0
    assert "sbatch jobs/train.sbatch" in capsys.readouterr().out
    assert (tmp_path / "jobs" / "train.sbatch").read_text().startswith("#!/bin/bash\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "3", "--", "train-local", "--batch-size", "128"], "choose a multiple of 3"),
        (["--", "generate"], "-- train-local [its options]"),
        ([], "-- train-local [its options]"),
    ],
)
@pytest.mark.usefixtures("here")
def test_a_job_that_cannot_run_is_refused_before_the_queue(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["slurm", "--no-submit", *args]) == 1
    assert message in capsys.readouterr().err


def test_a_job_whose_nodes_would_not_find_torchrun_is_not_submitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no torchrun (and no venv line) for the job
    assert main(["slurm", "--submit", *TRAIN]) == 1
    assert "torchrun is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "ganfriends.sbatch").exists()


def test_jobs_get_a_rendezvous_port_of_their_own_unless_one_is_given() -> None:
    derived = render_script(SlurmConfig(), ["--epochs", "1"])
    assert "RDZV_PORT=$((20000 + SLURM_JOB_ID % 10000))\n" in derived
    for job_id, port in ((1, 20001), (123456789, 26789)):
        echoed = subprocess.run(
            ["bash", "-c", 'eval "$(grep ^RDZV_PORT= /dev/stdin)"; echo "$RDZV_PORT"'],
            input=derived,
            env={"SLURM_JOB_ID": str(job_id)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert echoed.stdout == f"{port}\n"
    assert "RDZV_PORT=29500\n" in render_script(SlurmConfig(rdzv_port=29500), ["--epochs", "1"])


HOSTILE = ["a\nb", "a;b", "$(id)", "`id`", "a b", "a\tb", "", "a|b", "a&b", "a>b", "'a'", "a\rb"]
VALID_TIMES = ["30", "30:00", "01:59:00", "2-12", "2-12:30", "2-12:30:00", "UNLIMITED", "infinite"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["job_name", "partition", "account", "time"])
def test_a_field_outside_slurms_syntax_is_refused(field: str, value: str) -> None:
    with pytest.raises(SlurmFieldError, match=f"^--{field.replace('_', '-')} ") as refused:
        # Each parametrized field is a str one; mypy checks ** against every field.
        render_script(SlurmConfig(**{field: value}), ["--epochs", "1"])  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)  # one line, whatever the value held


@pytest.mark.parametrize("value", [*HOSTILE[:4], "a\tb", "", " ", "CUDA/12 ;id", "-f x", "a\nb c"])
def test_a_module_list_that_is_not_module_names_is_refused(value: str) -> None:
    with pytest.raises(SlurmFieldError, match=r"^--modules "):
        render_script(SlurmConfig(modules=value), ["--epochs", "1"])


@pytest.mark.parametrize("time", VALID_TIMES)
def test_every_time_format_of_sbatch_is_accepted(time: str) -> None:
    assert f"#SBATCH --time={time}\n" in render_script(SlurmConfig(time=time), [])


@pytest.mark.parametrize("time", ["1:2:3:4", "1-2-3", "-1", "1.5", "1h", "2-", ":30", "1-2:3:4:5"])
def test_time_limits_sbatch_would_not_read_are_refused(time: str) -> None:
    with pytest.raises(SlurmFieldError, match=r"^--time "):
        render_script(SlurmConfig(time=time), [])


def test_names_and_module_lists_of_real_sites_are_accepted() -> None:
    slurm = SlurmConfig(
        job_name="gan_celeba-2.0+x",
        partition="gpu,gpu-long",
        account="proj.ai_01",
        modules=" Stages/2024  GCC cuda/12.1 PyTorch/2.1.2-foss-2023a ",
    )
    script = render_script(slurm, [])
    assert "#SBATCH --job-name=gan_celeba-2.0+x\n" in script
    assert "#SBATCH --partition=gpu,gpu-long\n#SBATCH --account=proj.ai_01\n" in script
    assert "\nmodule load Stages/2024 GCC cuda/12.1 PyTorch/2.1.2-foss-2023a\n" in script


@pytest.mark.usefixtures("here")
def test_a_hostile_field_from_the_config_file_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text('slurm:\n  modules: "CUDA/12\\ntouch pwned"\n')
    assert main(["slurm", *TRAIN]) == 1
    assert capsys.readouterr().err == (
        "error: --modules 'CUDA/12\\ntouch pwned' is not module names separated by spaces "
        "(letters, digits, . _ + / -)\n"
    )
    assert not (tmp_path / "ganfriends.sbatch").exists()
