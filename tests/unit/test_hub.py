"""Hugging Face pushes with the real ``huggingface_hub`` client against a local endpoint."""

from __future__ import annotations

import io
import json
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load, save

from ganfriends.config import REDACTED, load_config
from ganfriends.errors import ConfigError
from ganfriends.generate import generate_grid_from_hub
from ganfriends.grid import save_grid
from ganfriends.hub import HubPublisher, HubTarget, open_publisher, take_snapshot
from ganfriends.hub.download import (
    HubRepoError,
    check_metadata,
    fetch_model,
    generator_bytes,
    target_for,
)
from ganfriends.hub.files import HubSnapshot
from ganfriends.hub.publisher import FLUSH_SECONDS
from ganfriends.models import ModelConfig, build_models, make_generator
from ganfriends.rules.base import ServerState
from ganfriends.step import make_optimizers
from ganfriends.training.history import HistoryWriter
from ganfriends.training.writer import RunWriter
from tests.hub_endpoint import LocalHub
from tests.waiting import wait_until

MODEL = ModelConfig(image_size=16, channels=1, latent_dim=8, g_features=4, d_features=4)
REPO = "class/fashion-gan"
TOKEN = "hf_unit_test_secret_token"


class Warnings(list[str]):
    """Collects the publisher's warnings."""

    def __call__(self, message: str) -> None:
        self.append(message)


def publisher(
    hub: LocalHub, interval: int = 1, flush_seconds: float = FLUSH_SECONDS
) -> tuple[HubPublisher, Warnings]:
    warnings = Warnings()
    target = HubTarget(REPO, TOKEN, hub.url)
    return HubPublisher(target, interval, warn=warnings, flush_seconds=flush_seconds), warnings


def snapshot(tmp_path: Path, step: int, seed: int = 0) -> HubSnapshot:
    generator, discriminator = build_models(MODEL, seed=seed)
    grid = save_grid(torch.rand(4, 1, 16, 16) * 2 - 1, tmp_path / f"step_{step}.png", nrow=2)
    return take_snapshot(
        generator=generator,
        discriminator=discriminator,
        samples=grid,
        curves=None,
        metadata={
            "source": "unit test",
            "dataset": "fashion-mnist",
            "step": step,
            "epoch": 0.5,
            "images_seen": 16 * step,
            "losses": {"d_loss": 1.25, "g_loss": 0.75},
            "fid": None,
            "model_config": MODEL.to_dict(),
        },
    )


def test_a_push_lands_every_file_in_one_commit(hub: LocalHub, tmp_path: Path) -> None:
    generator, discriminator = build_models(MODEL, seed=5)
    grid = save_grid(torch.rand(4, 1, 16, 16) * 2 - 1, tmp_path / "epoch_0001.png", nrow=2)
    curves = tmp_path / "curves.png"
    Image.new("RGB", (20, 10), "white").save(curves)
    metadata = {"step": 7, "epoch": 1.0, "images_seen": 112, "fid": 123.5,
                "losses": {"d_loss": 1.5, "g_loss": 0.5}, "model_config": MODEL.to_dict(),
                "source": "train-local", "dataset": "fashion-mnist"}  # fmt: skip
    pub, warnings = publisher(hub)
    pub.offer(take_snapshot(generator=generator, discriminator=discriminator, samples=grid,
                            curves=curves, metadata=metadata))  # fmt: skip
    assert pub.close()

    assert warnings == [] and pub.pushed == [7]
    (commit,) = hub.state.commits[REPO]
    files = hub.state.files(REPO)
    assert set(commit.files) == set(files) == {
        "generator.safetensors", "discriminator.safetensors", "samples/latest.png",
        "samples/epoch_0001.png", "curves.png", "metadata.json", "README.md",
    }  # fmt: skip
    for name, module in (("generator", generator), ("discriminator", discriminator)):
        loaded = load(files[f"{name}.safetensors"])
        assert loaded.keys() == module.state_dict().keys()
        for key, value in module.state_dict().items():
            assert torch.equal(loaded[key], value), key
    meta = json.loads(files["metadata.json"])
    assert meta["format"] == "ganfriends-hub/1"
    assert (meta["step"], meta["epoch"], meta["images_seen"], meta["fid"]) == (7, 1.0, 112, 123.5)
    assert meta["model_config"] == MODEL.to_dict()
    assert meta["sample_grids"] == ["samples/epoch_0001.png"]
    assert meta["loss_history"] == [{"step": 7, "d_loss": 1.5, "g_loss": 0.5}]
    assert files["samples/latest.png"] == grid.read_bytes()
    with Image.open(io.BytesIO(files["samples/latest.png"])) as image:
        assert image.size == (38, 38)
    Image.open(io.BytesIO(files["curves.png"])).verify()
    readme = files["README.md"].decode()
    assert readme.startswith("---\nlibrary_name: ganfriends\n")
    assert f"ganfriends generate --hf-repo {REPO}" in readme and "FID 123.50" in readme
    # The token authenticates every request and is in no file.
    assert set(hub.state.authorizations) == {f"Bearer {TOKEN}"}
    assert not any(TOKEN.encode() in content for content in files.values())
    # Binary files went through the LFS batch API, text in the commit itself.
    assert any(r.endswith("/info/lfs/objects/batch") for r in hub.state.requests)


def test_every_nth_grid_is_pushed_and_close_pushes_the_last(hub: LocalHub, tmp_path: Path) -> None:
    pub, warnings = publisher(hub, interval=3)
    queued = [pub.offer(snapshot(tmp_path, step)) for step in (1, 2, 3)]
    assert queued == [False, False, True]
    # Else 4 would replace 3 while it waits: also right.
    wait_until(lambda: pub.pushed == [3], lambda: f"3 pushed alone, not {pub.pushed}")
    assert not pub.offer(snapshot(tmp_path, 4))
    assert pub.close()
    assert warnings == [] and pub.pushed == [3, 4]
    assert json.loads(hub.state.files(REPO)["metadata.json"])["step"] == 4
    # Nothing is pushed twice: a close right after a queued grid adds no commit.
    pub2, _ = publisher(hub, interval=1)
    pub2.offer(snapshot(tmp_path, 5))
    assert pub2.close() and pub2.pushed == [5]


def test_a_failing_push_warns_once_and_the_next_push_retries(hub: LocalHub, tmp_path: Path) -> None:
    hub.state.fail_with = 500
    pub, warnings = publisher(hub)
    started = time.monotonic()
    pub.offer(snapshot(tmp_path, 1))
    assert time.monotonic() - started < 0.5  # the caller never waits for the Hub
    wait_until(lambda: pub.failures > 0, "a failed push")
    assert pub.failures == 1 and len(warnings) == 1
    assert "push of step 1" in warnings[0] and "the next push retries" in warnings[0]
    assert "\n" not in warnings[0] and TOKEN not in warnings[0]

    hub.state.fail_with = None
    pub.offer(snapshot(tmp_path, 2))
    assert pub.close()
    assert pub.pushed == [2] and json.loads(hub.state.files(REPO)["metadata.json"])["step"] == 2


def test_an_unreachable_hub_is_a_warning(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    warnings = Warnings()
    pub = HubPublisher(HubTarget(REPO, None, f"http://127.0.0.1:{port}"), 1, warn=warnings)
    pub.offer(snapshot(tmp_path, 1))
    assert pub.close()  # the push ended (it failed): nothing is left to wait for
    assert pub.failures == 1 and len(warnings) == 1 and "failed" in warnings[0]


def run_outputs(tmp_path: Path, hub: HubPublisher) -> RunWriter:
    generator, discriminator = build_models(MODEL, seed=1)
    optimizer_g, optimizer_d = make_optimizers(generator, discriminator, 2e-4, (0.5, 0.999))
    models = ServerState(generator, discriminator, optimizer_g, optimizer_d)
    return RunWriter(
        tmp_path / "run", models, MODEL, {"data": {"dataset": "fashion-mnist"}}, 0,
        "train-local", "fashion-mnist", hub=hub,
        history=HistoryWriter(tmp_path / "run" / "history.csv"),
    )  # fmt: skip


def test_a_slow_hub_does_not_slow_the_training_side(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.state.commit_gate.clear()  # every push hangs until the five grids are written
    pub, warnings = publisher(hub)
    outputs = run_outputs(tmp_path, pub)
    sample_calls, hub_calls = [], []
    snapshot_of = outputs._hub_snapshot

    def timed_snapshot(grid: Path, curves: Path | None) -> HubSnapshot:  # a stopwatch around it
        started = time.perf_counter()
        snap = snapshot_of(grid, curves)
        hub_calls.append(time.perf_counter() - started)
        return snap

    offer = pub.offer

    def timed_offer(snap: HubSnapshot) -> bool:
        started = time.perf_counter()
        queued = offer(snap)
        hub_calls[-1] += time.perf_counter() - started
        return queued

    monkeypatch.setattr(outputs, "_hub_snapshot", timed_snapshot)
    monkeypatch.setattr(pub, "offer", timed_offer)
    for step in range(1, 6):
        outputs.record({"step": step, "epoch": step / 10, "images_seen": 16 * step,
                        "d_loss": 1.0 + step, "g_loss": 2.0 + step})  # fmt: skip
        started = time.perf_counter()
        outputs.samples(f"epoch_{step:04d}")
        sample_calls.append(time.perf_counter() - started)
        if step == 1:  # the push of 1 is under way (and hangs) before 2 can replace it
            wait_until(
                lambda: any("/commit/" in r for r in hub.state.requests), "the first push's commit"
            )
    # The training side wrote every grid while the first push still hung: it never waits for it.
    pushed_while_hanging = list(pub.pushed)
    hub.state.commit_gate.set()
    flush_started = time.perf_counter()
    outputs.close()
    flush = time.perf_counter() - flush_started

    print(
        f"\nslow hub (the first push hangs until every grid is written): the Hub's share of the "
        f"training thread (snapshot + offer) {', '.join(f'{t * 1000:.1f}' for t in hub_calls)} ms; "
        f"outputs.samples (grid + curves + Hub) {max(sample_calls) * 1000:.0f} ms at most; "
        f"pushes took {', '.join(f'{s:.2f} s' for s in pub.push_seconds)}; close waited "
        f"{flush:.2f} s; {pub.replaced} snapshot(s) replaced while waiting"
    )
    assert pushed_while_hanging == []
    assert warnings == []
    # The first snapshot was pushing; 2 and 3 were replaced while it hung, 4 by 5; 5 lands.
    assert pub.pushed == [1, 5] and pub.replaced == 3
    meta = json.loads(hub.state.files(REPO)["metadata.json"])
    assert meta["losses"] == {"d_loss": 6.0, "g_loss": 7.0} and meta["source"] == "train-local"
    assert "curves.png" in hub.state.files(REPO)


def test_close_waits_a_bounded_time_and_says_so(hub: LocalHub, tmp_path: Path) -> None:
    hub.state.commit_delay = 3.0
    pub, warnings = publisher(hub, flush_seconds=0.5)
    pub.offer(snapshot(tmp_path, 1))
    started = time.monotonic()
    assert not pub.close()
    assert time.monotonic() - started < 1.5
    assert len(warnings) == 1 and "did not finish within 0.5 s" in warnings[0]


def test_generate_and_fetch_read_a_push_back(hub: LocalHub, tmp_path: Path) -> None:
    pub, _ = publisher(hub)
    snap = snapshot(tmp_path, 3, seed=9)
    expected = dict(snap.generator)
    pub.offer(snap)
    assert pub.close()

    model = fetch_model(HubTarget(REPO, TOKEN, hub.url), with_grids=True)
    assert model.step == 3 and model.model_config == MODEL
    for key, value in model.generator.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert [i for i, _ in model.grids] == [0]

    out = generate_grid_from_hub(
        target_for(REPO), tmp_path / "drawn.png", num=4, device="cpu"
    )  # the endpoint from HF_ENDPOINT
    with Image.open(out) as drawn:
        assert drawn.size == (2 + 2 * 18, 2 + 2 * 18)  # 2x2 images of 16 px, 2 px padding

    with pytest.raises(HubRepoError, match="not found"):
        fetch_model(HubTarget("class/missing", None, hub.url))
    with pytest.raises(HubRepoError, match="owner/name"):
        target_for("../etc")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other/1"}, "format"),
        ({"step": True}, "step"),
        ({"step": -1}, "step"),
        ({"model_config": {"image_size": 48}}, "image_size"),
        ({"model_config": {"image_size": [16]}}, "model_config"),
        ({"model_config": {"image_size": 64, "latent_dim": 10**7}}, "latent_dim must be in"),
        ({"model_config": {"image_size": 64, "g_features": 10**5}}, "g_features must be in"),
        ({"sample_grids": ["samples/../../x.png"]}, "sample_grids"),
        ({"loss_history": [{"step": 1}]}, "loss_history"),
    ],
)
def test_metadata_is_checked_before_use(change: dict[str, object], message: str) -> None:
    good = {"format": "ganfriends-hub/1", "step": 1, "model_config": MODEL.to_dict()}
    assert check_metadata(good)["step"] == 1
    with pytest.raises(HubRepoError, match=message):
        check_metadata({**good, **change})


def test_the_config_enables_pushing_and_keeps_the_token_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"GANFRIENDS_HUGGINGFACE_ENABLED": "true", "GANFRIENDS_HUGGINGFACE_TOKEN": TOKEN,
           "GANFRIENDS_HUGGINGFACE_REPO_ID": REPO}  # fmt: skip
    config = load_config(env=env, default_file=None)
    assert config.huggingface.enabled and config.huggingface.repo_id == REPO
    assert config.to_dict()["huggingface"]["token"] == REDACTED
    assert TOKEN not in repr(HubTarget.from_config(config.huggingface))

    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    from_env = load_config(env={k: v for k, v in env.items() if "TOKEN" not in k},
                           default_file=None)  # fmt: skip
    target = HubTarget.from_config(from_env.huggingface)
    assert (target.token, target.endpoint) == ("hf_from_env", "http://127.0.0.1:9")

    with pytest.raises(ConfigError, match=r"huggingface.repo_id as owner/name"):
        load_config(env={"GANFRIENDS_HUGGINGFACE_ENABLED": "1"}, default_file=None)
    with pytest.raises(ConfigError, match=r"owner/name, got 'no-owner'"):
        load_config(env={**env, "GANFRIENDS_HUGGINGFACE_REPO_ID": "no-owner"}, default_file=None)


def test_a_missing_client_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    config = load_config(
        env={"GANFRIENDS_HUGGINGFACE_ENABLED": "1", "GANFRIENDS_HUGGINGFACE_REPO_ID": REPO},
        default_file=None,
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'ganfriends\[hub\]'") as caught:
        open_publisher(config.huggingface, Console(quiet=True))
    assert "\n" not in str(caught.value)


def serve_repo(hub: LocalHub, model: Mapping[str, object], generator: bytes) -> HubTarget:
    """A repository holding ``generator`` as the weights of the metadata's ``model``."""
    metadata = {"format": "ganfriends-hub/1", "step": 1, "model_config": model}
    hub.state.repos[REPO] = {"metadata.json": json.dumps(metadata).encode(),
                             "generator.safetensors": generator}  # fmt: skip
    return HubTarget(REPO, None, hub.url)


def weights_requests(hub: LocalHub) -> list[str]:
    return [r.split()[0] for r in hub.state.requests if r.endswith("/generator.safetensors")]


def tiny_weights() -> bytes:
    return save(make_generator(MODEL).state_dict())


def test_a_small_repo_cannot_ask_for_a_huge_model(hub: LocalHub) -> None:
    # A few KB of weights, and metadata asking for the largest generator ModelConfig accepts.
    huge = {"image_size": 128, "latent_dim": 4096, "g_features": 1024}
    target = serve_repo(hub, huge, tiny_weights())
    started = time.perf_counter()
    with pytest.raises(HubRepoError) as refused:
        fetch_model(target)
    assert str(refused.value) == (
        f"{target.describe()}: metadata.json's model needs 15,704,178,728 bytes of weights, "
        "more than 2,147,483,648"
    )
    assert weights_requests(hub) == []  # not even asked for
    assert time.perf_counter() - started < 5


def test_weights_of_the_wrong_size_are_refused_before_download(hub: LocalHub) -> None:
    bigger = ModelConfig(image_size=16, channels=1, latent_dim=8, g_features=64, d_features=4)
    # The metadata says MODEL (~10 KB), the file is a far bigger generator's (~560 KB).
    target = serve_repo(hub, MODEL.to_dict(), save(make_generator(bigger).state_dict()))
    with pytest.raises(HubRepoError, match=r"generator\.safetensors is [\d,]+ bytes, not .*: not "):
        fetch_model(target)
    assert weights_requests(hub) == ["HEAD"]  # its size, never its bytes
    # ... and a file too small for its metadata's model: nothing is built from it.
    hub.state.repos[REPO]["generator.safetensors"] = b"{}"
    with pytest.raises(HubRepoError, match="is 2 bytes, not "):
        fetch_model(target)
    assert weights_requests(hub) == ["HEAD", "HEAD"]


def test_an_oversized_metadata_file_is_not_downloaded(hub: LocalHub) -> None:
    target = serve_repo(hub, MODEL.to_dict(), tiny_weights())
    hub.state.repos[REPO]["metadata.json"] += b" " * (2 << 20)
    with pytest.raises(HubRepoError, match=r"metadata\.json is 2,097,[\d,]+ bytes, not 0 to "):
        fetch_model(target)
    assert not any(r.startswith("GET") for r in hub.state.requests)


def test_the_generator_size_is_counted_without_allocating_it() -> None:
    assert generator_bytes(MODEL) == sum(
        t.numel() * t.element_size() for t in make_generator(MODEL).state_dict().values()
    )
    assert generator_bytes(ModelConfig()) == 14_314_528  # the 64x64 default, 3.58 M parameters
