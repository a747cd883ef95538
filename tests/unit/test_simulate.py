"""``simulate`` follows a version's results with the class run's step (``rules/advance.py``):
a combined update that is not finite is never published."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganfriends.compression import Compressed
from ganfriends.errors import GanError
from ganfriends.rules import Unit, UnitResult
from ganfriends.training.checkpoint import load_checkpoint
from ganfriends.training.history import read_history
from ganfriends.training.simulate import changed_bytes
from tests.unit.test_rules_screening import scaled, simulate_sync, weights

# The tiny run of simulate_sync: alternating, 3 units per version, 2 versions per step; units 6, 8
# and 10 are version 2's, the D phase of step 2. Every student's copy scaled alike: no median can
# tell (screening passes them), but Adam's second moments overflow to inf.
SPOILED = (6, 8, 10)


def spoil(result: UnitResult) -> UnitResult:
    return scaled(result, 1e30)


def test_a_run_whose_combined_update_is_never_finite_stops_at_the_last_good_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def attacker(unit: Unit, result: UnitResult) -> UnitResult:
        return spoil(result) if unit.index in SPOILED else result

    with pytest.raises(GanError, match="3 times in a row: stopping with version 2"):
        simulate_sync(tmp_path, monkeypatch, tamper=attacker)

    (out,) = tmp_path.iterdir()
    saved = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert saved.step == 1  # version 2: the last good one, kept
    assert all(bool(torch.isfinite(t).all()) for t in saved.generator_state_dict.values())
    assert all(bool(torch.isfinite(t).all()) for t in saved.discriminator_state_dict.values())
    assert [row["step"] for row in read_history(out / "history.csv")] == ["1"]


def test_a_version_spoiled_once_is_computed_again_and_the_run_equals_the_honest_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spoiled: set[int] = set()

    def attacker(unit: Unit, result: UnitResult) -> UnitResult:
        if unit.index in SPOILED and unit.index not in spoiled:
            spoiled.add(unit.index)  # the first copy only: the recomputed one is honest
            return spoil(result)
        return result

    honest = weights(simulate_sync(tmp_path, monkeypatch))
    retried = weights(simulate_sync(tmp_path, monkeypatch, tamper=attacker))

    assert spoiled == set(SPOILED)
    for name, tensor in honest.items():
        assert torch.equal(retried[name], tensor), name


def test_a_worker_downloads_only_the_networks_its_version_changed() -> None:
    g = {"w": torch.zeros(4), "b": torch.zeros(2)}  # 24 bytes
    d = {"w": torch.zeros(8)}  # 32 bytes
    d_stepped = {"w": torch.full((8,), 0.5)}

    sent = (Compressed(None, g), Compressed(None, d_stepped))

    assert changed_bytes((), (g, d), sent) == 56  # a worker that holds nothing takes both
    assert changed_bytes((g, d), (dict(g), d_stepped), sent) == 32  # an alternating D version
    assert changed_bytes((g, d), (dict(g), dict(d)), sent) == 0


def test_a_rounded_download_counts_the_bytes_of_its_copy() -> None:
    g, d = {"w": torch.zeros(4)}, {"w": torch.zeros(8)}
    d_stepped = {"w": torch.full((8,), 0.5)}
    int8 = Compressed({"w": torch.zeros(8, dtype=torch.int8), "w:scale": torch.ones(())}, d)

    assert changed_bytes((g, d), (dict(g), d_stepped), (Compressed(None, g), int8)) == 8 + 4
