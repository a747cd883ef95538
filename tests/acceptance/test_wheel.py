"""``pip install`` like a library: the wheel builds, installs in a clean venv with only the core
dependencies, carries its SQL and templates, and its CLI runs."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "ganfriends"
MIGRATIONS = PACKAGE / "db" / "sql" / "migrations"


def data_files() -> list[str]:
    """Every file of the source package that is not Python (SQL, migrations, py.typed, ...), as
    the wheel names it: whatever their number, a wheel without one of them is broken."""
    found = [
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert "ganfriends/db/sql/queries.sql" in found and "ganfriends/py.typed" in found
    return found


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_wheel_installs_alone_and_its_worker_runs(tmp_path: Path) -> None:
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("ganfriends-*.whl")

    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    installed = run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(wheel)],
        tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr

    helped = run([str(tmp_path / "venv" / "bin" / "ganfriends"), "worker", "--help"], tmp_path)
    assert helped.returncode == 0 and "--name" in helped.stdout, helped.stderr
    with zipfile.ZipFile(wheel) as archive:
        missing = sorted(set(data_files()) - set(archive.namelist()))
    assert not missing, f"the wheel lacks {missing}"
    shipped = run(
        [str(python), "-c",
         "import json; from importlib import resources as r; p = r.files('ganfriends');"
         "print(json.dumps(sorted(f.name for f in (p / 'db' / 'sql' / 'migrations').iterdir())))"],
        tmp_path,
    )  # fmt: skip
    assert shipped.returncode == 0, shipped.stderr
    assert json.loads(shipped.stdout) == sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    # Only the core: the dashboard, experiment logging and notebooks are extras.
    extras = run([str(python), "-m", "pip", "show", "streamlit", "mlflow-skinny", "nbclient"],
                 tmp_path)  # fmt: skip
    assert "Name:" not in extras.stdout
