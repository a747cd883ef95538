"""What a worker needs to compute a claimed unit: the run's rule, data and networks, the
published weights (or inputs) of the unit's version, and its device's local state.

:class:`WorkSession` computes one unit into a :class:`~ganfriends.classroom.queue.Outgoing` ready
to upload; the worker's loop (:mod:`ganfriends.classroom.worker`) claims, retries, uploads and
stops around it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from ganfriends.blobs import InvalidBlob
from ganfriends.classroom import queue
from ganfriends.classroom.payload import (
    decode_device_state,
    decode_inputs,
    encode_device_state,
    encode_result,
    load_weights,
)
from ganfriends.classroom.queue import Claim, Outgoing, Run
from ganfriends.compression import FLOAT32, Transfer, transfer
from ganfriends.data import ImageDataset
from ganfriends.db import Database
from ganfriends.errors import GanError
from ganfriends.models import build_models
from ganfriends.rules import Rule, make_rule
from ganfriends.rules.capabilities import PublishesInputs, device_state_spec
from ganfriends.rules.work import UnitStart, Workspace
from ganfriends.step import StepStats


class VersionGone(GanError):
    """The claimed unit's version was consumed and pruned while this worker got to it."""


class PublishedWeights:
    """The published version the models hold; a new version downloads only the networks it
    changed.

    Each network is kept with the digest it was published under (migration 0014). For another
    version the worker sends the digests it holds, and the database returns only the blobs whose
    digest differs, in one round trip: an alternating run's D version changed D alone, so G is not
    downloaded again.
    A run that rounds its downloads (``--download-dtype``) serves a rounded copy, the same for
    every worker, and the models hold what it stands for.
    Computing a unit moves the BatchNorm buffers, so before each unit the published state is
    restored from the local copy rather than fetched again. ``fetched`` counts the bytes
    downloaded per network (what the wire carried, less the protocol's framing).
    """

    def __init__(
        self, generator: nn.Module, discriminator: nn.Module, how: Transfer = FLOAT32
    ) -> None:
        self.models = (generator, discriminator)
        self.how = how  # the run's --download-dtype: what form the blobs come in
        self._networks = {"generator": generator, "discriminator": discriminator}
        self.version: int | None = None
        self._held: dict[str, tuple[bytes, dict[str, torch.Tensor]]] = {}  # digest, state
        self.fetched: Counter[str] = Counter()

    def load(self, db: Database, run_id: int, version: int) -> None:
        """Make the models hold weights ``version`` exactly as published."""
        if version != self.version:
            held = {network: digest for network, (digest, _) in self._held.items()}
            changed = queue.changed_weights(db, run_id, version, held)
            if changed is None:
                raise VersionGone(f"weights of version {version} are gone from the database")
            for network, blob in changed.blobs.items():
                self.fetched[network] += len(blob)
                model = self._networks[network]
                load_weights(model, blob, self.how)
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                self._held[network] = (changed.digests[network], state)
            self.version = version
        for network, model in self._networks.items():
            model.load_state_dict(self._held[network][1])


@dataclass(frozen=True)
class Computed:
    """A computed unit: its upload, and what its phase measured (for the worker's log)."""

    outgoing: Outgoing
    stats: StepStats


@dataclass
class WorkSession:
    """What a worker holds while it works for one run."""

    run: Run
    rule: Rule
    dataset: ImageDataset
    generator: nn.Module
    discriminator: nn.Module
    published: PublishedWeights
    device: torch.device

    @classmethod
    def open(cls, run: Run, dataset: ImageDataset, device: torch.device) -> WorkSession:
        """A session on ``run``: its rule, and networks of its architecture on ``device``."""
        generator, discriminator = build_models(run.model_config)
        generator, discriminator = generator.to(device), discriminator.to(device)
        return cls(
            run=run,
            rule=make_rule(run.mode, run.plan, run.config, run.model_config, dataset),
            dataset=dataset,
            generator=generator,
            discriminator=discriminator,
            published=PublishedWeights(
                generator, discriminator, transfer(run.config.coordinator.download_dtype)
            ),
            device=device,
        )

    @property
    def run_id(self) -> int:
        """The run this worker serves."""
        return self.run.id

    def load_version(self, db: Database, claim: Claim) -> dict[str, torch.Tensor] | None:
        """Make the networks hold the claim's version; the inputs it reads when the rule
        publishes inputs rather than weights (MD-GAN). Raises :class:`VersionGone`."""
        if not isinstance(self.rule, PublishesInputs):
            self.published.load(db, self.run_id, claim.version)
            return None
        spec = self.rule.inputs_spec(self.generator, self.discriminator)
        names = self.rule.inputs_needed(claim.unit)
        blobs = queue.inputs(db, self.run_id, claim.version, names)
        if set(blobs) != set(names):
            raise VersionGone(f"the inputs of version {claim.version} are gone from the database")
        try:
            return decode_inputs(blobs, spec)
        except InvalidBlob as exc:  # written by the coordinator: say so rather than crash
            raise GanError(f"the inputs of version {claim.version} are invalid: {exc}") from exc

    def device_state(self, db: Database, claim: Claim) -> dict[str, torch.Tensor] | None:
        """The local state the claimed unit's device starts from (per-device modes)."""
        spec = device_state_spec(self.rule, self.generator, self.discriminator)
        if spec is None or claim.unit.device is None:
            return None
        blob = queue.device_state(db, self.run_id, claim.unit.device)
        if blob is None:
            return None
        try:
            return decode_device_state(blob, spec)
        except InvalidBlob as exc:  # the coordinator validated it; say so rather than crash
            raise GanError(f"device {claim.unit.device}'s stored state is invalid: {exc}") from exc

    def compute(
        self,
        claim: Claim,
        *,
        inputs: dict[str, torch.Tensor] | None,
        device_state: dict[str, torch.Tensor] | None,
    ) -> Computed:
        """Compute the claimed unit on the loaded version and encode its upload."""
        started = time.monotonic()
        try:
            work = Workspace(self.generator, self.discriminator, self.dataset, self.device)
            result = self.rule.compute(work, claim.unit, UnitStart(device_state, inputs))
        except torch.cuda.OutOfMemoryError as exc:
            raise GanError(
                f"this GPU cannot fit the run's batches at {self.run.model_config.image_size}"
                "px: run with --device cpu, or ask the instructor for a smaller batch"
            ) from exc
        seconds = time.monotonic() - started
        spec = self.rule.result_spec(self.generator, self.discriminator, claim.version)
        outgoing = Outgoing(
            claim=claim,
            images=result.stats.images,
            payload=encode_result(result, spec),
            device_state=(
                None if result.device_state is None else encode_device_state(result.device_state)
            ),
            compute_seconds=seconds,
        )
        return Computed(outgoing, result.stats)
