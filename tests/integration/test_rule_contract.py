"""One contract, every registered rule, on a real PostgreSQL (issue 21).

Each registered mode must: store its plan in ``runs.plan`` and read it back equal; compute units
whose results pass the transport's validation against ``result_spec``; give, through
``simulate``, bit for bit the model a one-worker class run gives (the class run here drives the
real worker session and coordinator in this process, version by version); and have a hostile
result (wrong shape, NaN, beyond the absolute bound) refused on arrival. A mode registered
without a case in :data:`CASES` fails :func:`test_every_registered_mode_has_a_contract_case`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from ganfriends.classroom import queue
from ganfriends.classroom.coordinator import Coordinator
from ganfriends.classroom.intake import Valid
from ganfriends.classroom.payload import decode_result, encode_result
from ganfriends.classroom.state import create_run, load_run_state
from ganfriends.classroom.unit_work import WorkSession
from ganfriends.config import Config, load_config
from ganfriends.data import ImageDataset, make_dataset
from ganfriends.db import Database
from ganfriends.errors import GanError
from ganfriends.models import ModelConfig
from ganfriends.rules import ServerState, plan_from_config
from ganfriends.rules.registry import mode_names
from ganfriends.training.local import model_config_for
from ganfriends.training.simulate import simulate
from tests.integration.queue_helpers import FINGERPRINT, Raw, make_plan, register

CPU = torch.device("cpu")
IMAGES = 64


# A tiny run of each registered mode (and of its variants that compute otherwise): its own
# settings, beside the shared ones of run_config. A case named "MODE:variant" runs MODE.
SYNC: dict[str, object] = {
    "coordinator.images_per_work_unit": 16,
    "coordinator.workunits_per_update": 2,
    "training.micro_batch": 8,
    "coordinator.max_iterations": 2,  # the alternating default: 4 versions
}
CASES: dict[str, dict[str, object]] = {
    "sync": SYNC,
    # Rounds of 2 local steps (the last one short) and an outer step with momentum for G and
    # another learning rate for D: every outer setting crosses runs.plan.
    "sync:local-steps": SYNC
    | {
        "coordinator.max_iterations": 5,
        "coordinator.local_steps": 2,
        "coordinator.outer_optimizer": "nesterov",
        "coordinator.outer_lr": 0.8,
        "coordinator.outer_momentum": 0.5,
        "coordinator.outer_lr_d": 0.6,
    },
    # Each slot's inner Adam carried between its rounds through the database.
    "sync:local-steps-kept-state": SYNC
    | {
        "coordinator.max_iterations": 4,
        "coordinator.local_steps": 2,
        "coordinator.local_state": "keep",
    },
    "federated": {
        "federated.devices": 3,
        "federated.fraction": 0.5,
        "federated.local_steps": 2,
        "federated.batch_size": 4,
        "federated.rounds": 3,
    },
    "md-gan": {
        "federated.devices": 2,
        "federated.batch_size": 8,
        "mdgan.k": 2,
        "mdgan.disc_steps": 1,
        "mdgan.iterations": 5,  # shards of 32 images: a swap every 4 iterations
    },
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 64 random 32x32 images: small shards, quick units."""
    folder = tmp_path_factory.mktemp("contract-images")
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"{i:03d}.png"
        )
    return folder


def run_config(case: str, images: Path, out: Path) -> Config:
    """The tiny run of ``case`` on the image folder, on the CPU, writing under ``out``."""
    shared = {
        "coordinator.mode": case.partition(":")[0],
        "coordinator.output_dir": out / "class",
        "coordinator.sample_interval": 10**6,
        "data.dataset": "folder",
        "data.dataset_path": images,
        "data.data_dir": out / "data",
        "local.num_workers": 0,
        "training.image_size": 32,
        "training.latent_dim": 8,
        "training.g_features": 4,
        "training.d_features": 4,
        "training.seed": 3,
        "local.device": "cpu",
        "local.output_dir": out / "sim",
    }
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in shared.items()}
    return load_config(overrides=overrides | CASES[case], env={}, default_file=None)


@dataclass(frozen=True)
class Case:
    """A registered mode's tiny run: its config and its data."""

    mode: str
    config: Config
    dataset: ImageDataset


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, images: Path, tmp_path: Path) -> Case:
    config = run_config(request.param, images, tmp_path)
    return Case(config.coordinator.mode, config, open_data(config))


def open_data(config: Config) -> ImageDataset:
    data = config.data
    return make_dataset(
        data.dataset,
        path=data.dataset_path,
        image_size=config.training.image_size,
        data_dir=data.data_dir,
    )


def new_run(db: Database, config: Config, dataset: ImageDataset) -> int:
    mode = config.coordinator.mode
    plan = plan_from_config(mode, config, dataset)
    with db.transaction() as tx:
        return create_run(
            tx, name=f"contract-{mode}", mode=mode, plan=plan, config=config.to_dict(),
            model_config=model_config_for(config, dataset),
            fingerprint=dataset.fingerprint().to_dict(), lease_seconds=60, max_backups=0,
            max_units_per_claim=8, dataset=dataset,
        )  # fmt: skip


def session(db: Database, run_id: int, dataset: ImageDataset) -> WorkSession:
    """A worker's session on the run, as ``ganfriends worker`` opens it."""
    return WorkSession.open(queue.get_run(db, run_id), dataset, CPU)


def work_version(db: Database, run_id: int, worker: int, work: WorkSession) -> int:
    """Claim, compute and upload every unit of the published version; how many."""
    outgoing = []
    for claim in queue.claim(db, run_id, worker, count=8):
        inputs = work.load_version(db, claim)
        state = work.device_state(db, claim)
        outgoing.append(work.compute(claim, inputs=inputs, device_state=state).outgoing)
    return len(queue.submit(db, run_id, worker, outgoing))


def class_run(
    db: Database,
    config: Config,
    dataset: ImageDataset,
    worked: Callable[[WorkSession, int], object] | None = None,
) -> ServerState:
    """A one-worker class run, version by version, through the database, with the coordinator's
    state read back from the database after every version (as a restarted coordinator reads
    it: its optimizers' states, outer momentum included, must resume exactly); ``worked`` is
    called with the worker's session and the version once the worker has uploaded its units."""
    run_id = new_run(db, config, dataset)
    worker = register(db, run_id)
    work = session(db, run_id, dataset)
    coordinator = Coordinator(db, config, console=Console(file=io.StringIO()))
    state = load_run_state(db, run_id, dataset)
    while state.version < state.plan.total_versions:
        assert work_version(db, run_id, worker, work) > 0
        if worked is not None:
            worked(work, state.version)
        valid = coordinator.validated_results(state)
        assert valid is not None, f"version {state.version} was refused"
        coordinator.apply_update(state, valid, 0.0)
        state = load_run_state(db, run_id, dataset)
    return state.server


def test_every_registered_mode_has_a_contract_case() -> None:
    assert {name.partition(":")[0] for name in CASES} == set(mode_names())


def validated(db: Database, case: Case, run_id: int) -> list[Valid] | None:
    """The coordinator's validation of the published version's uploads."""
    state = load_run_state(db, run_id, case.dataset)
    coordinator = Coordinator(db, case.config, console=Console(file=io.StringIO()))
    return coordinator.validated_results(state)


def test_a_plan_reads_back_from_runs_plan_as_it_was_made(case: Case, db: Database) -> None:
    plan = plan_from_config(case.mode, case.config, case.dataset)

    run_id = new_run(db, case.config, case.dataset)

    assert queue.get_run(db, run_id).plan == plan


def test_a_units_result_passes_validation_against_its_spec(case: Case, db: Database) -> None:
    run_id = new_run(db, case.config, case.dataset)
    worker = register(db, run_id)

    stored = work_version(db, run_id, worker, session(db, run_id, case.dataset))

    valid = validated(db, case, run_id)
    assert valid is not None and len(valid) == stored
    assert stored == len(load_run_state(db, run_id, case.dataset).rule.units_of(0))


def test_simulate_gives_the_model_of_a_one_worker_class_run(case: Case, db: Database) -> None:
    simulated = simulate(case.config, console=Console(file=io.StringIO()))
    served = class_run(db, case.config, case.dataset)

    saved = torch.load(simulated.latest_checkpoint, map_location="cpu", weights_only=False)
    for key, net in (("generator_state_dict", served.generator),
                     ("discriminator_state_dict", served.discriminator)):  # fmt: skip
        ours = net.state_dict()
        assert ours.keys() == saved[key].keys()
        for name, tensor in saved[key].items():
            assert torch.equal(ours[name], tensor), f"{key} {name}"


def wrong_shape(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(1, *t.shape)


def not_a_number(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


def huge(t: torch.Tensor) -> torch.Tensor:
    return t + 1e7  # beyond any honest value (payload.MAX_MAGNITUDE)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [(wrong_shape, "shape|wrong tensors"), (not_a_number, "NaN"), (huge, "beyond")],
)
def test_a_hostile_result_is_refused_on_arrival(
    case: Case,
    tamper: Callable[[torch.Tensor], torch.Tensor],
    reason: str,
    db: Database,
    raw: Raw,
) -> None:
    run_id = new_run(db, case.config, case.dataset)
    mallory = register(db, run_id, "mallory")
    work = session(db, run_id, case.dataset)
    [claim] = queue.claim(db, run_id, mallory)
    inputs = work.load_version(db, claim)
    computed = work.compute(claim, inputs=inputs, device_state=work.device_state(db, claim))
    honest = computed.outgoing
    spec = work.rule.result_spec(work.generator, work.discriminator, claim.version)
    result = decode_result(honest.payload, spec, max_images=work.rule.max_images(claim.unit))
    name = sorted(result.parameters)[0]
    result.parameters[name] = tamper(result.parameters[name])
    hostile = queue.Outgoing(claim, honest.images, encode_result(result), honest.device_state, 0.0)
    assert queue.submit(db, run_id, mallory, [hostile])

    valid = validated(db, case, run_id)

    assert valid is None
    rejection = raw.one("SELECT worker_id, reason FROM rejections")
    assert rejection["worker_id"] == mallory
    assert any(word in rejection["reason"] for word in reason.split("|")), rejection["reason"]


def store_run(db: Database, mode: str) -> None:
    """Write a run row of ``mode`` as the coordinator's role does, and read it back (a sync
    plan: the database does not look inside)."""
    with db.transaction() as tx:
        queue.create_run(
            tx, name="stored", mode=mode, plan=make_plan(2), config=Config().to_dict(),
            model_config=ModelConfig(image_size=32, channels=1), fingerprint=FINGERPRINT,
            lease_seconds=30, max_backups=0, max_units_per_claim=1,
        )  # fmt: skip


def test_a_run_of_a_mode_this_version_lacks_is_refused_naming_the_upgrade(db: Database) -> None:
    # The database keeps no list of modes (migration 0012): the row is written, and reading
    # it back is what refuses it.
    with pytest.raises(GanError, match=r"'from-the-future'.*upgrade ganfriends"):
        store_run(db, "from-the-future")


def test_the_database_refuses_a_mode_that_is_no_mode_name(db: Database) -> None:
    with pytest.raises(GanError, match="runs_mode_name"):
        store_run(db, "Not A Mode")
