"""One class update equals one step of the shared training step over the same images and noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rich.console import Console

from ganfriends import rng
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.state import create_run, load_run_state
from ganfriends.compat import WORKER_VERSION
from ganfriends.config import Config
from ganfriends.data import DatasetFingerprint, ImageDataset
from ganfriends.db import Database
from ganfriends.losses import make_loss
from ganfriends.models import ModelConfig, build_models
from ganfriends.rules import SyncPlan, Unit, make_rule
from ganfriends.rules.work import Workspace
from ganfriends.schedule import micro_slices
from ganfriends.step import MicroBatch, make_optimizers, train_step

MODEL = ModelConfig(image_size=32, channels=1, latent_dim=8, g_features=4, d_features=4)
PLAN = SyncPlan(dataset_size=256, seed=11, images_per_unit=64, units_per_update=2, micro_batch=32,
               epochs=1, update_rule="simultaneous")  # fmt: skip


class FixedImages(ImageDataset):
    """256 fixed pseudo-random images."""

    name, channels, image_size, in_memory = "fixed", 1, 32, True

    def __init__(self) -> None:
        self.images = torch.rand(256, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def __len__(self) -> int:
        return 256

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, int]:
        return self.images[list(indices)], 0

    def fingerprint(self) -> DatasetFingerprint:
        return DatasetFingerprint("fixed", 256, 32, 1, "0" * 64)


def test_one_update_equals_the_simultaneous_step_on_all_its_micro_batches(db: Database) -> None:
    dataset, loss, config = FixedImages(), make_loss("bce"), Config()
    with db.transaction() as tx:
        run_id = create_run(
            tx, name="t", mode="sync", config=config.to_dict(), model_config=MODEL,
            fingerprint=dataset.fingerprint().to_dict(), plan=PLAN, lease_seconds=60, max_backups=0,
            max_units_per_claim=4,
        )  # fmt: skip
    worker = db.fetch_one(
        "register_worker", run_id=run_id, name="w", hostname="h", device="cpu", gpu_name=None,
        gpu_vram_gb=None, cpu_cores=None, ram_gb=None, version=WORKER_VERSION,
    )  # fmt: skip
    assert worker is not None
    state = load_run_state(db, run_id)
    initial = {k: v.clone() for k, v in state.server.generator.state_dict().items()}
    initial_d = {k: v.clone() for k, v in state.server.discriminator.state_dict().items()}
    rule = make_rule("sync", PLAN, config, MODEL)

    # Workers: each unit on a fresh copy of the published weights.
    for _ in PLAN.units_of_update(0):
        claim = db.fetch_one("claim_unit", run_id=run_id, worker_id=worker["id"])
        assert claim is not None
        g, d = build_models(MODEL)
        g.load_state_dict(initial)
        d.load_state_dict(initial_d)
        result = rule.compute(
            Workspace(g, d, dataset, torch.device("cpu")), Unit(int(claim["unit_index"]))
        )
        accepted = db.fetch_one(
            "submit_result", run_id=run_id, worker_id=worker["id"], token=claim["token"],
            images=result.images, payload=encode_result(result), device_state=None,
            compute_seconds=0.0,
        )  # fmt: skip
        assert accepted is not None

    coordinator = Coordinator(db, config, console=Console(quiet=True))
    results = coordinator.validated_results(state)
    assert results is not None
    coordinator.apply_update(state, results, 0.0)

    # Reference: the shared step over the same micro-batches, with the coordinator's optimizers.
    g_ref, d_ref = build_models(MODEL, seed=rng.derive_seed(PLAN.seed, rng.INIT))
    opt_g, opt_d = make_optimizers(g_ref, d_ref, 2e-4, (0.5, 0.999))
    batches = [
        MicroBatch(dataset.get_batch(idx)[0], PLAN.unit_noise(unit, MODEL.latent_dim)[rows])
        for unit in PLAN.units_of_update(0)
        for idx, rows in zip(
            PLAN.micro_batches(PLAN.unit_images(unit)),
            micro_slices(0, PLAN.images_per_unit, PLAN.micro_batch),
            strict=True,
        )
    ]
    train_step(g_ref, d_ref, loss, batches, "simultaneous", optimizer_g=opt_g, optimizer_d=opt_d)

    for (name, p), p_ref in zip(
        state.server.generator.named_parameters(), g_ref.parameters(), strict=True
    ):
        torch.testing.assert_close(p, p_ref, atol=1e-6, rtol=1e-5, msg=f"G {name}")
    for (name, p), p_ref in zip(
        state.server.discriminator.named_parameters(), d_ref.parameters(), strict=True
    ):
        torch.testing.assert_close(p, p_ref, atol=1e-6, rtol=1e-5, msg=f"D {name}")

    # BatchNorm statistics: the units' chained in unit order are the one process's.
    running_mean = "main.1.running_mean"
    torch.testing.assert_close(
        state.server.generator.state_dict()[running_mean], g_ref.state_dict()[running_mean]
    )
    assert not torch.equal(g_ref.state_dict()[running_mean], initial[running_mean])

    # And what was published is what the coordinator holds.
    published = load_run_state(db, run_id)
    assert published.version == 1
    for a, b in zip(
        published.server.generator.parameters(), state.server.generator.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    # Screening's memory goes with the version: a restarted coordinator holds what this one does.
    assert published.norm_history == state.norm_history
    assert len(published.norm_history) == 1 and published.norm_history[0]["g"] > 0
