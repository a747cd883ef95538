"""``ganfriends eval`` on a real (tiny) checkpoint: the handler in-process, errors, JSON output."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from ganfriends.errors import CheckpointError, DatasetError, GanError
from ganfriends.evaluation import EvalError, add_eval_arguments, run_eval
from ganfriends.evaluation import classifier as classifier_module
from tests.acceptance.conftest import TINY_MODEL, run_cli
from tests.conftest import requires_fashion_mnist
from tests.unit.test_eval_shared import QUICK_RECIPE, shared_data_dir

pytestmark = requires_fashion_mnist


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("eval_cli")
    train = ["train-local", "--max-steps", "3", "--batch-size", "16", *TINY_MODEL]
    result = run_cli([*train, "--output-dir", "run"], workdir)
    assert result.returncode == 0, result.stderr
    return workdir / "run" / "checkpoints" / "latest.pt"


@pytest.fixture
def eval_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's data dir, whose features/ holds the quick classifier once trained."""
    return shared_data_dir(tmp_path_factory)


@pytest.fixture
def quick_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's classifier becomes the quick one (its own cache key), trained once per session."""
    monkeypatch.setattr(classifier_module, "DEFAULT_RECIPE", QUICK_RECIPE)


def parse(*argv: str) -> argparse.Namespace:
    return add_eval_arguments(argparse.ArgumentParser(prog="ganfriends eval")).parse_args(argv)


@pytest.fixture
def evaluate(
    quick_recipe: None, checkpoint: Path, eval_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., str]:
    """``eval ARGS`` of the tiny checkpoint with the quick classifier's features; its stdout."""

    def run(*argv: str) -> str:
        args = parse("--checkpoint", str(checkpoint), "--data-dir", str(eval_data_dir), *argv)
        assert run_eval(args) == 0
        return capsys.readouterr().out

    return run


def test_eval_json(evaluate: Callable[..., str]) -> None:
    result = json.loads(evaluate("--num-samples", "500", "--device", "cpu", "--json"))
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall"):
        assert math.isfinite(result[key]), key
    assert result["fid"] > 0 and 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert result["num_samples"] == 500 and result["num_real"] == 500
    assert result["step"] == 3
    assert (result["dataset"], result["split"]) == ("fashion-mnist", "test")
    assert result["features"]["kind"] == "classifier" and result["features"]["dim"] == 128
    assert result["features"]["test_accuracy"] >= QUICK_RECIPE.min_accuracy


def test_eval_text(evaluate: Callable[..., str]) -> None:
    out = evaluate("--num-samples", "300", "--kid-subsets", "10")
    labels = [line.split()[0] for line in out.splitlines()]
    assert labels[:9] == [
        "checkpoint", "real", "features", "samples", "FID", "KID", "precision", "recall", "time"
    ]  # fmt: skip
    assert "samples     300" in out


@pytest.mark.usefixtures("quick_recipe")
def test_train_features_reports_its_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_eval(parse("--train-features", "--data-dir", str(tmp_path), "--json")) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)["feature_classifier"]
    assert report["test_accuracy"] >= QUICK_RECIPE.min_accuracy
    assert Path(report["weights"]).parent == tmp_path / "features"
    assert "test accuracy" in captured.err  # progress goes to stderr, never into the JSON


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["--checkpoint", "missing.pt"], CheckpointError, "does not exist"),
        (["--checkpoint", "CKPT", "--dataset", "svhn"], DatasetError, "unknown dataset"),
        (["--checkpoint", "CKPT", "--dataset", "celeba"], EvalError, "needs Inception features"),
        (["--checkpoint", "CKPT", "--inception", "/no/such.pt"], EvalError, "not found"),
        ([], EvalError, "needs --checkpoint"),
        (["--train-features", "--dataset", "folder"], EvalError, "needs class labels"),
    ],
)
def test_user_errors_are_one_line(
    checkpoint: Path, argv: list[str], error: type[GanError], message: str
) -> None:
    args = parse(*[str(checkpoint) if a == "CKPT" else a for a in argv])
    with pytest.raises(error, match=message) as info:
        run_eval(args)
    assert "\n" not in str(info.value)


def test_wired_cli_reports_errors_in_one_line(checkpoint: Path, tmp_path: Path) -> None:
    helped = run_cli(["eval", "--help"], tmp_path)
    assert helped.returncode == 0 and "--checkpoint" in helped.stdout, helped.stderr
    missing = run_cli(["eval", "--checkpoint", "missing.pt"], tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: checkpoint {Path('missing.pt')} does not exist"
    ]
    rgb = run_cli(["eval", "--checkpoint", str(checkpoint), "--dataset", "celeba"], tmp_path)
    assert rgb.returncode == 1
    assert len(rgb.stderr.strip().splitlines()) == 1
    assert "--inception" in rgb.stderr
