"""The student's checks: would ``ganfriends worker`` work here, and how fast?

The URL comes from where the worker takes it (``ganfriends doctor URL``, else ``--db``,
``GANFRIENDS_DATABASE_URL``, config.yaml, else an embedded server running on this machine), and
the data and device settings are the worker's own flags. The checks read and compute but write
nothing: no worker is registered and the timed unit is never uploaded.
"""

from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import torch

from ganfriends.classroom import queue
from ganfriends.classroom.connect import OUTAGE_NOTICE, configured_url, embedded_url
from ganfriends.classroom.payload import load_weights
from ganfriends.classroom.queue import Blobs, Claim, Run
from ganfriends.classroom.unit_work import VersionGone, WorkSession
from ganfriends.classroom.worker import detect_hardware, open_run_dataset
from ganfriends.config import Config
from ganfriends.data import ImageDataset
from ganfriends.db import Database
from ganfriends.db.errors import translate_error
from ganfriends.db.sql import queries
from ganfriends.device import resolve_device
from ganfriends.doctor import advice, network
from ganfriends.doctor.checks import Found, Report, Result, attempt, fail, ok, skip, warn
from ganfriends.doctor.network import APPLICATION, BadInput, Target
from ganfriends.doctor.tls import check_tls
from ganfriends.rules.capabilities import PublishesInputs

PINGS = 5  # round trips whose median is the latency
SLOW_ROUND_TRIP = 0.25  # seconds: above this, every claim waits noticeably
# A first unit pays for start-up (kernels chosen and compiled, caches filled): below this many
# seconds it is computed a second time and the faster of the two is the one reported.
REPEAT_BELOW = 10.0
# The checks that need a login, before and after the device's (which needs none).
NEED_LOGIN = (("rights", "latency", "run", "dataset"), ("download", "unit", "claims"))


def student_target(config: Config, url: str | None) -> tuple[Target, str]:
    """The URL the worker would use, taken apart, and where it came from."""
    if url:
        return network.parse_url(url), "given"
    configured = configured_url(config)
    if configured:
        source = config.given.get("database.url") or config.given.get("database.host", "config")
        return network.parse_url(configured), f"from {source}"
    local = embedded_url(start=False)
    if local:
        return network.parse_url(local), "the embedded server on this machine"
    raise BadInput(
        "no database URL: pass the one your instructor gave you (ganfriends doctor URL), or set "
        "GANFRIENDS_DATABASE_URL to it, as for `ganfriends worker`"
    )


# ---------------------------------------------------------------------------- the network


def check_login(target: Target) -> Found[psycopg.Connection[Any]]:
    """A session as the URL's role, and how it travels."""
    try:
        conn = network.connect(target)
    except psycopg.OperationalError as exc:
        return Found(fail("login", network.login_advice(exc, target)))
    try:
        row = conn.execute(queries()["doctor_session"], {}).fetchone()
    except psycopg.Error as exc:
        conn.close()
        return Found(fail("login", str(translate_error(exc))))
    assert row is not None
    role, version, tls, protocol = row
    travels = f"over {protocol}" if tls else "on the socket" if target.socket else "unencrypted"
    return Found(ok("login", f"as {role} on PostgreSQL {version}, {travels}"), conn)


def check_rights(conn: psycopg.Connection[Any]) -> Found[None]:
    """Whether the role may read the run and call the worker functions."""
    rows = conn.execute(queries()["doctor_worker_rights"], {}).fetchall()
    if not rows:
        return Found(
            fail("rights", "this database has no ganfriends schema: the instructor runs "
                 "`ganfriends init-db` (or starts the coordinator)")
        )  # fmt: skip
    missing = [str(name) for name, allowed in rows if not allowed]
    functions = sum(1 for name, _ in rows if str(name).startswith("function "))
    if len(missing) == len(rows):
        return Found(
            fail("rights", "this role has none of a worker's rights in this database: is it a "
                 "student of this class? The instructor adds you with `ganfriends students add "
                 "NAME`, which prints your own URL")
        )  # fmt: skip
    if missing:
        return Found(
            fail(
                "rights",
                f"this role may not use {', '.join(missing)}: the instructor re-applies the "
                "class's rights by adding a student (`ganfriends students add NAME`)",
            )
        )
    return Found(ok("rights", f"may read the run and call the {functions} worker functions"))


def check_latency(conn: psycopg.Connection[Any]) -> Found[float]:
    """The median round trip of a statement that does nothing."""
    seconds = network.round_trip(conn, queries()["doctor_ping"], times=PINGS)
    line = f"round trip {advice.seconds(seconds)} (median of {PINGS})"
    if seconds > SLOW_ROUND_TRIP:
        return Found(
            warn("latency", f"{line}: slow; each claim waits {advice.ROUND_TRIPS_PER_CLAIM} of "
                 "them, so claim several units at once (see claims)"),
            seconds,
        )  # fmt: skip
    return Found(ok("latency", line), seconds)


# ---------------------------------------------------------------------------- the run


def check_run(db: Database, target: Target) -> Found[Run]:
    """The run a worker would join, and whether this student may work on it."""
    run = queue.latest_running_run(db)
    if run is None:
        return Found(
            fail("run", "no run is running: the instructor starts one with `ganfriends "
                 "coordinator` (a worker started now waits for it)")
        )  # fmt: skip
    standing = db.fetch_one("doctor_my_standing", run_id=run.id)
    if standing is not None and standing["quarantined"]:
        return Found(
            fail("run", f"you are quarantined in run {run.id} after {standing['rejections']} "
                 f"rejected uploads: the instructor lifts it with `ganfriends students pardon "
                 f"{target.user}`")
        )  # fmt: skip
    if standing is not None and standing["workers"] >= standing["max_live_workers"]:
        return Found(
            fail("run", f"{standing['workers']} of your workers are alive, the most run {run.id} "
                 "allows: stop one before starting another")
        )  # fmt: skip
    return Found(
        ok("run", f"run {run.id} {run.name!r}: {run.mode}, {run.plan.describe()}; "
           f"version {run.version} of {run.total_versions}"),
        run,
    )  # fmt: skip


def check_dataset(config: Config, run: Run) -> Found[ImageDataset]:
    """The run's dataset on this machine, with the run's fingerprint."""
    dataset = open_run_dataset(config, run)
    found = dataset.fingerprint().short()
    return Found(ok("dataset", f"{len(dataset):,} images, {found}: the run's"), dataset)


def check_device(config: Config) -> Found[torch.device]:
    """The device the worker would compute on."""
    device = resolve_device(config.local.device)
    hw = detect_hardware(device)
    ram = f"{hw.ram_gb:.1f} GiB RAM" if hw.ram_gb else "RAM unknown"
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return Found(
            ok("device", f"{device}: {hw.gpu_name}, {total / 2**30:.1f} GiB "
               f"({free / 2**30:.1f} GiB free); {hw.cpu_cores} CPU cores, {ram}"),
            device,
        )  # fmt: skip
    line = f"{device.type}: {hw.cpu_cores} cores ({torch.get_num_threads()} used by torch), {ram}"
    if device.type == "cpu" and not torch.cuda.is_available():
        line += "; no CUDA GPU here (a GPU computes units many times faster)"
    return Found(ok("device", line), device)


@dataclass(frozen=True)
class Download:
    """The published weights of one version, and how long fetching them took."""

    version: int
    blobs: Blobs
    seconds: float

    @property
    def size(self) -> int:
        """Bytes of both networks."""
        return len(self.blobs.generator) + len(self.blobs.discriminator)


def check_download(db: Database, run: Run) -> Found[Download]:
    """Fetch the current version's weights as a worker does for each version (the run's
    rounded copy where it publishes one), timed."""
    started = time.perf_counter()
    changed = queue.changed_weights(db, run.id, run.version, {})
    seconds = time.perf_counter() - started
    if changed is None:
        return Found(warn("download", f"version {run.version} moved on meanwhile: run again"))
    blobs = Blobs(changed.blobs["generator"], changed.blobs["discriminator"])
    got = Download(run.version, blobs, seconds)
    rate = got.size / max(seconds, 1e-6) / 1e6
    return Found(
        ok("download", f"weights of version {run.version} ({got.size / 1e6:.1f} MB) in "
           f"{advice.seconds(seconds)}: {rate:,.1f} MB/s"),
        got,
    )  # fmt: skip


@dataclass(frozen=True)
class Timed:
    """One unit computed here: its seconds, and how many units its version has."""

    seconds: float
    units_in_version: int


def check_unit(
    db: Database, run: Run, dataset: ImageDataset, device: torch.device, weights: Download
) -> Found[Timed]:
    """One real unit of the run's rule on the published weights, timed and not uploaded."""
    session = WorkSession.open(run, dataset, device)
    units = session.rule.units_of(weights.version)
    if not units:
        return Found(warn("unit", f"version {weights.version} has no units (the run is ending)"))
    # A claim made here, not in the database: it leases nothing and nobody sees it.
    claim = Claim(0, weights.version, units[0], uuid.UUID(int=0),
                  datetime.datetime.now(datetime.timezone.utc), backup=False)  # fmt: skip
    timings: list[float] = []
    while True:
        if isinstance(session.rule, PublishesInputs):
            try:
                inputs = session.load_version(db, claim)
            except VersionGone:
                return Found(warn("unit", "the run moved on while this unit loaded: run again"))
        else:
            how = session.published.how  # the form the run publishes its downloads in
            load_weights(session.generator, weights.blobs.generator, how)
            load_weights(session.discriminator, weights.blobs.discriminator, how)
            inputs = None
        state = session.device_state(db, claim)
        computed = session.compute(claim, inputs=inputs, device_state=state)
        timings.append(computed.outgoing.compute_seconds)
        if len(timings) == 2 or timings[0] >= REPEAT_BELOW:
            break
    seconds, images = min(timings), computed.stats.images
    timed = Timed(seconds, len(units))
    line = (
        f"{images} images of unit {claim.unit.index} (version {claim.version}) in "
        f"{advice.seconds(seconds)} on {device}: {images / max(seconds, 1e-6):,.0f} images/s"
    )
    if len(timings) == 2:  # the first pays for start-up, on a GPU most of all
        first, second = (advice.seconds(t) for t in timings)
        line += f" (the faster of two runs: {first}, then {second})"
    longest = run.lease_seconds * run.config.coordinator.max_lease_factor
    if seconds > longest:
        return Found(
            fail("unit", f"{line}: longer than run {run.id} lets a unit be held "
                 f"({longest:.0f} s): this machine is too slow for this run; use a GPU "
                 "(--device cuda) or another machine"),
        )  # fmt: skip
    if seconds > run.lease_seconds:
        return Found(
            warn("unit", f"{line}: longer than a lease ({run.lease_seconds:.0f} s); heartbeats "
                 "extend it, but a straggler's unit is copied to others"),
            timed,
        )  # fmt: skip
    return Found(ok("unit", line), timed)


def check_claims(
    run: Run, config: Config, unit: Timed, round_trip: float, weights: Download
) -> Result:
    """The advised ``--units-per-claim`` for this machine and this run."""
    cap = min(run.max_units_per_claim, max(1, unit.units_in_version))
    advised = advice.units_per_claim(unit.seconds, round_trip, weights.seconds, cap)
    line = advice.describe(advised, unit.seconds, round_trip)
    mine = config.worker.units_per_claim
    if mine != advised.units:
        line += f" (yours: {mine})"
    return ok("claims", line)


# ---------------------------------------------------------------------------- all of them


def check_student(
    config: Config, url: str | None, *, fingerprint: str | None, report: Report
) -> int:
    """Every student check in order, each line handed to ``report`` as it comes; the exit
    status (0: a worker would work here). Raises :class:`BadInput` for a URL it cannot read."""
    pin = network.normalise_fingerprint(fingerprint) if fingerprint else None
    target, source = student_target(config, url)
    report.add(ok("url", f"{target.describe()}, {source}"))
    report.add(check_tls(target, pin))
    conn = report.take(check_login(target))
    if conn is None:
        report.skip(NEED_LOGIN[0], "needs a login")
        report.take(attempt("device", check_device, config))
        report.skip(NEED_LOGIN[1], "needs a login")
        return report.exit_status
    with conn:
        report.take(attempt("rights", check_rights, conn))
        round_trip = report.take(attempt("latency", check_latency, conn))
    with Database(
        target.url, min_size=1, max_size=1, application_name=APPLICATION, timeout=OUTAGE_NOTICE
    ) as db:
        run = report.take(attempt("run", check_run, db, target))
        dataset = weights = None
        if run is not None:
            dataset = report.take(attempt("dataset", check_dataset, config, run))
        else:
            report.add(skip("dataset", "needs a running run"))
        device = report.take(attempt("device", check_device, config))
        if run is not None:
            weights = report.take(attempt("download", check_download, db, run))
        else:
            report.add(skip("download", "needs a running run"))
        if run is None or dataset is None or device is None or weights is None:
            report.skip(("unit", "claims"), "needs the run, its dataset, a device and its weights")
            return report.exit_status
        unit = report.take(attempt("unit", check_unit, db, run, dataset, device, weights))
    if unit is None or round_trip is None:
        report.skip(("claims",), "needs a timed unit and the latency")
    else:
        report.add(check_claims(run, config, unit, round_trip, weights))
    return report.exit_status
