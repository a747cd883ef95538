"""The coordinator's outputs push a class run's published version to a local Hub endpoint."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load

from ganfriends.classroom.outputs import CoordinatorOutputs
from ganfriends.classroom.state import create_run, load_run_state
from ganfriends.config import load_config
from ganfriends.db import Database
from ganfriends.hub import HubTarget
from ganfriends.hub.download import fetch_model
from tests.hub_endpoint import LocalHub, configure_client, local_hub
from tests.integration.test_coordinator_update import MODEL, PLAN, FixedImages

REPO = "class/coordinator-run"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalHub]:
    with local_hub() as endpoint:
        configure_client(monkeypatch, endpoint, tmp_path / "hf_home")
        yield endpoint


def test_the_coordinator_pushes_every_nth_grid_and_the_last(
    db: Database, hub: LocalHub, tmp_path: Path
) -> None:
    config = load_config(
        env={"GANFRIENDS_HUGGINGFACE_ENABLED": "true", "GANFRIENDS_HUGGINGFACE_REPO_ID": REPO,
             "GANFRIENDS_HUGGINGFACE_PUSH_INTERVAL": "2"},
        default_file=None,
    )  # fmt: skip
    dataset = FixedImages()
    with db.transaction() as tx:
        run_id = create_run(
            tx, name="hub", mode="sync", config=config.to_dict(), model_config=MODEL,
            fingerprint=dataset.fingerprint().to_dict(), plan=PLAN, lease_seconds=60, max_backups=0,
            max_units_per_claim=4,
        )  # fmt: skip
    state = load_run_state(db, run_id)
    out = io.StringIO()
    outputs = CoordinatorOutputs(db, config, tmp_path / "outputs", Console(file=out, width=200))
    outputs.open(state)
    for version in (1, 2, 3):  # as if the run had published them (the weights stay the same)
        state.server.version = version
        outputs.published(state, {"d_loss": 1.0 / version, "g_loss": 2.0 * version})
        outputs.write(state)
        # Let push 2 start before 3 comes: a newer snapshot replaces one still waiting.
        deadline = time.monotonic() + 30
        hub_client = outputs.writer.hub
        while version == 2 and hub_client is not None and not hub_client.pushed:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    outputs.close()

    assert "Hugging Face: 2 push(es)" in out.getvalue() and "the last at step 3" in out.getvalue()
    commits = hub.state.commits[REPO]
    assert [c.summary for c in commits] == ["ganfriends: step 2", "ganfriends: step 3"]
    files = hub.state.files(REPO)
    meta = json.loads(files["metadata.json"])
    assert meta["source"] == f"class run {run_id} (sync)" and meta["step"] == 3
    assert meta["losses"] == {"d_loss": pytest.approx(1 / 3), "g_loss": 6.0}
    assert meta["sample_grids"] == ["samples/version_000002.png", "samples/version_000003.png"]
    assert "curves.png" not in files  # a class run's curves are in its database
    weights = load(files["generator.safetensors"])
    for key, value in state.server.generator.state_dict().items():
        assert torch.equal(weights[key], value), key
    # The sample grid also went to the database, as without the Hub.
    assert db.fetch_one("dashboard_sample", run_id=run_id, version=3) is not None

    model = fetch_model(HubTarget(REPO, None, hub.url), with_grids=True)
    assert model.step == 3 and len(model.grids) == 2
