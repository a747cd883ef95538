"""A hostile student: everything one student's own login can do to a class, all at once.

With nothing but their ``students add`` URL, the attacker (issue #20's "Why"):

- registers as many workers as the database lets them (``max_workers_per_student``);
- claims with a huge count and asks for backup copies from every registration, and keeps what it
  holds alive with heartbeats without ever uploading it (``hoard``: freeze the run);
- uploads tampered copies of honestly computed units, one kind after another: a NaN, loss
  statistics of 1.7e308, all zeros but one 1e-20 (a free-rider), a tensor of the wrong shape,
  more images than the unit has, and (``steer``) every tensor x1e4;
- squats every lock its role can take, in a transaction left open: advisory locks on any key the
  coordinator ever used, ACCESS SHARE on every table it may read (re-taken when the coordinator's
  watchdog ends the session);
- floods the coordinator's wake-up channel with NOTIFYs.

It works through the same functions a worker uses (``ganfriends.classroom.queue``) and plain SQL
for the squatting, on its own connections. :class:`HostileStudent` runs in a thread beside a
class (the acceptance test ``test_hostile_class.py``); ``python benchmarks/hostile_student.py``
runs a whole class twice, honest and attacked, and prints the figures (see :func:`main`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace

import psycopg
import torch

from ganfriends.classroom import queue
from ganfriends.classroom.payload import encode_result
from ganfriends.classroom.queue import Claim, Hardware, Outgoing, Run
from ganfriends.classroom.unit_work import PublishedWeights, VersionGone
from ganfriends.data import ImageDataset, make_dataset
from ganfriends.db import Database, DatabaseError, DatabaseUnavailable
from ganfriends.models import build_models
from ganfriends.rules import Rule, make_rule
from ganfriends.rules.base import UnitResult
from ganfriends.rules.work import Workspace

# Uploads that validation or screening must refuse (the run stays bit-identical to an honest one).
REFUSED_KINDS = ("nan", "stats", "zero", "shape", "images")
# Accepted, but only within the clip bound.
STEER = "steer"
HARDWARE = Hardware("cpu", None, None, 1, None)
READABLE = ("runs", "weights", "version_inputs", "device_states", "workers", "work_units",
            "updates", "samples", "evaluations", "rejections", "pending_credit",
            "student_standing")  # fmt: skip


@dataclass
class Report:
    """What the attacker tried and what the class let it do."""

    registered: int = 0
    registrations_refused: int = 0
    units_claimed: int = 0
    units_hoarded: int = 0
    uploads: Counter[str] = field(default_factory=Counter)  # stored, by kind
    refused_calls: Counter[str] = field(default_factory=Counter)  # database refusals, by call
    squats: int = 0  # times the squatting session was (re)opened
    notifies: int = 0
    quarantined_at: float | None = None  # seconds after start

    def lines(self) -> list[str]:
        """The report as plain text lines."""
        return [
            f"registrations: {self.registered} accepted, {self.registrations_refused} refused",
            f"units claimed: {self.units_claimed} ({self.units_hoarded} hoarded, never uploaded)",
            "copies stored: "
            + (", ".join(f"{k} {n}" for k, n in sorted(self.uploads.items())) or "none"),
            "calls refused: "
            + (", ".join(f"{k} {n}" for k, n in sorted(self.refused_calls.items())) or "none"),
            f"lock squats: {self.squats} sessions; NOTIFY flood: {self.notifies}",
            "quarantined after "
            + ("never" if self.quarantined_at is None else f"{self.quarantined_at:.1f} s"),
        ]


class HostileStudent:
    """Attacks the latest running run through ``url`` (a student's login) until stopped."""

    def __init__(
        self,
        url: str,
        *,
        kinds: tuple[str, ...] = REFUSED_KINDS,
        hoard: bool = True,
        squat: bool = True,
        flood: bool = True,
        registrations: int = 12,
        data_dir: str | None = None,
    ) -> None:
        self.url = url
        self.kinds = itertools.cycle(kinds) if kinds else None
        self.hoard, self.squat, self.flood = hoard, squat, flood
        self.registrations = registrations
        self.data_dir = data_dir
        self.report = Report()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._main, name="hostile", daemon=True)
        self._started = 0.0
        self._dataset: ImageDataset | None = None
        self.error: BaseException | None = None

    def start(self) -> HostileStudent:
        """Start attacking in a thread."""
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> Report:
        """Stop and return the report (re-raising what broke the attacker itself, if anything)."""
        self._halt.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            trace = "".join(traceback.format_exception(self.error))
            raise RuntimeError(f"the attacker itself failed:\n{trace}") from self.error
        return self.report

    # ------------------------------------------------------------------ the loop

    def _main(self) -> None:
        try:
            with Database(self.url, max_size=4, timeout=10) as db:
                run = self._wait_for_run(db)
                if run is not None:
                    self._attack(db, run)
        except BaseException as exc:
            self.error = exc

    def _wait_for_run(self, db: Database) -> Run | None:
        while not self._halt.is_set():
            run = queue.latest_running_run(db)
            if run is not None:
                return run
            self._halt.wait(0.2)
        return None

    def _attack(self, db: Database, run: Run) -> None:
        dataset = make_dataset(
            str(run.fingerprint["name"]),
            image_size=int(run.model_config.image_size),
            data_dir=self.data_dir,
        )
        self._dataset = dataset
        rule = make_rule(run.mode, run.plan, run.config, run.model_config, dataset)
        generator, discriminator = build_models(run.model_config)
        published = PublishedWeights(generator, discriminator)
        workers = self._register(db, run.id)
        hoarded: list[tuple[int, Claim]] = []
        squatter: psycopg.Connection | None = None
        flood = psycopg.connect(self.url, autocommit=True) if self.flood else None
        try:
            while not self._halt.is_set() and queue.run_state(db, run.id) == "running":
                if self.squat:
                    squatter = self._keep_squatting(squatter, run.id)
                for worker in workers:
                    if not (self.hoard or self.kinds):
                        break  # this attack claims nothing
                    for claim in self._call(queue.claim, "claim", db, run.id, worker, 64):
                        self.report.units_claimed += 1
                        kind = next(self.kinds) if self.kinds else None
                        if self.hoard and (kind is None or self.report.units_claimed % 2):
                            hoarded.append((worker, claim))
                            self.report.units_hoarded += 1
                            continue
                        if kind is not None:
                            self._upload(db, run, rule, published, worker, claim, kind)
                    self._call(db.execute, "heartbeat", "heartbeat", worker_id=worker)
                    self._call(db.execute, "extend_leases", "extend_leases", worker_id=worker)
                if flood is not None:
                    for _ in range(50):
                        flood.execute("SELECT pg_notify('ganfriends_results', '0')")
                    self.report.notifies += 50
                if self.report.quarantined_at is None and self._quarantined(db, run.id):
                    self.report.quarantined_at = time.monotonic() - self._started
                self._halt.wait(0.2)
        finally:
            for conn in (squatter, flood):
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()

    # ------------------------------------------------------------------ the attacks

    def _register(self, db: Database, run_id: int) -> list[int]:
        workers = []
        for i in range(self.registrations):
            worker = self._call(
                queue.register_worker, "register", db, run_id, f"mallory{i}", "evil", HARDWARE
            )
            if worker:
                workers.append(worker)
        self.report.registered = len(workers)
        self.report.registrations_refused = self.registrations - len(workers)
        return workers

    def _call(self, fn, what: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        """``fn(*args)``, counting a database refusal instead of raising it."""
        try:
            return fn(*args, **kwargs)
        except DatabaseUnavailable:
            raise
        except DatabaseError:
            self.report.refused_calls[what] += 1
            return []

    def _upload(
        self,
        db: Database,
        run: Run,
        rule: Rule,
        published: PublishedWeights,
        worker: int,
        claim: Claim,
        kind: str,
    ) -> None:
        """Compute ``claim`` honestly, tamper with it as ``kind`` says, and upload it."""
        try:
            published.load(db, run.id, claim.version)
        except VersionGone:
            return
        generator, discriminator = published.models
        assert self._dataset is not None
        result = rule.compute(
            Workspace(generator, discriminator, self._dataset, torch.device("cpu")), claim.unit
        )
        spec = rule.result_spec(generator, discriminator, claim.version)
        payload = encode_result(tamper(result, kind), spec if kind != "shape" else None)
        images = result.images + (1 if kind == "images" else 0)
        stored = self._call(
            queue.submit, "upload", db, run.id, worker,
            [Outgoing(claim, images, payload, None, 0.01)],
        )  # fmt: skip
        if stored:
            self.report.uploads[kind] += 1

    def _keep_squatting(self, conn: psycopg.Connection | None, run_id: int) -> psycopg.Connection:
        """A session holding every lock the role can take, in a transaction left open; opened
        again when the coordinator's watchdog has ended it."""
        if conn is not None:
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:  # ended by the watchdog
                conn.close()
        conn = psycopg.connect(self.url)
        self.report.squats += 1
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        for key in (f"7426001, {run_id}", f"{run_id}", "hashtext('ganfriends.migrations')"):
            conn.execute(f"SELECT pg_try_advisory_lock({key})")
        for table in READABLE:
            conn.execute(f"LOCK TABLE ganfriends.{table} IN ACCESS SHARE MODE")
        denials = (
            f"SELECT ganfriends.take_run_lock({run_id})",
            "UPDATE ganfriends.run_locks SET holder_pid = pg_backend_pid()",
        )
        for denied in denials:
            conn.execute("SAVEPOINT denied")
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                conn.execute(denied)
                raise AssertionError(f"a student ran {denied!r}")
            conn.execute("ROLLBACK TO SAVEPOINT denied")
        return conn

    def _quarantined(self, db: Database, run_id: int) -> bool:
        rows = db.fetch_all("student_standing", run_id=run_id)
        return any(r["quarantined"] and r["student"].startswith(_role(self.url)) for r in rows)


def _running_version(db: Database) -> int:
    """The running run's published version, -1 while no run runs."""
    run = queue.latest_running_run(db)
    return -1 if run is None else run.version


def _role(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url).get("user") or "")


def tamper(result: UnitResult, kind: str) -> UnitResult:
    """``result`` changed as one attack: see the module docstring."""
    params = {k: v.clone() for k, v in result.parameters.items()}
    stats = replace(result.stats)
    first = next(iter(params))
    if kind == "nan":
        params[first].view(-1)[0] = float("nan")
    elif kind == "stats":
        stats.d_loss_sum = 1.7e308
    elif kind == "zero":
        params = {k: torch.zeros_like(v) for k, v in params.items()}
        params[first].view(-1)[0] = 1e-20
    elif kind == "shape":
        params[first] = params[first].reshape(-1)[:-1]
    elif kind == STEER:
        params = {k: v * 1e4 for k, v in params.items()}
    return replace(result, parameters=params, stats=stats)


# ---------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class Scenario:
    """One line of the table: what the attacker does (and how the coordinator is run)."""

    name: str
    what: str
    kinds: tuple[str, ...] = ()
    hoard: bool = False
    squat: bool = False
    flood: bool = False
    coordinator: tuple[str, ...] = ()


SCENARIOS = (
    Scenario("honest", "no attacker (the reference)"),
    Scenario("stop", "tampered copies of every refused kind", kinds=REFUSED_KINDS),
    Scenario("freeze", "all it may claim and back up, held alive, never uploaded", hoard=True),
    Scenario(
        "freeze, no backups",
        "the same with --max-backups 0",
        hoard=True,
        coordinator=("--max-backups", "0"),
    ),
    Scenario("squat", "every lock it can take, in a transaction left open", squat=True),
    Scenario("flood", "NOTIFY flood of the coordinator's wake-up channel only", flood=True),
    Scenario("steer", "every tensor x1e4 (accepted only clipped)", kinds=(STEER,)),
    Scenario("free-ride", "zeros and one 1e-20", kinds=("zero",)),
    Scenario(
        "all at once",
        "everything above but steer",
        kinds=REFUSED_KINDS,
        hoard=True,
        squat=True,
        flood=True,
    ),
)


def main() -> None:  # pragma: no cover - a benchmark, run by hand
    """Run a small class once per scenario on a private embedded PostgreSQL and print a table:
    the class's wall time against the honest one's, the attacker's strikes, who was flagged,
    and how far the final model is from the honest run's.

        python benchmarks/hostile_student.py [--steps 10] [--lease 3] [--only NAME ...]
    """
    import argparse
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from psycopg.conninfo import make_conninfo

    from ganfriends.classroom.status import read_standing
    from ganfriends.db import EmbeddedPostgres, migrate
    from ganfriends.db.server import APP_DATABASE
    from ganfriends.db.students import add_student

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--only", nargs="*", help="scenario names to run (after the honest one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    server = EmbeddedPostgres(work / "pg", durable=False)
    info = server.start()
    owner = info.local_url()
    try:
        with Database(owner, max_size=2) as db:
            migrate(db)
        admin = info.admin_url(APP_DATABASE)
        urls = {
            name: make_conninfo(owner, user=name, password=add_student(admin, name))
            for name in ("alice", "bob", "mallory")
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GANFRIENDS_")},
            "OMP_NUM_THREADS": "1", "GANFRIENDS_DATA_DIR": str(work / "data"),
            "GANFRIENDS_PG_DIR": str(work / "no-server"),
        }  # fmt: skip
        run = [
            "--g-features", "8", "--d-features", "8", "--latent-dim", "16",
            "--images-per-work-unit", "64", "--workunits-per-update", "3", "--micro-batch", "32",
            "--max-iterations", str(args.steps), "--work-unit-timeout", str(args.lease),
            "--seed", "9", "--sample-interval", "1000",
        ]  # fmt: skip

        def gf(cli: list[str], url: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "ganfriends", *cli, "--db", url], cwd=work, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip

        rows = []
        honest_seconds = 0.0
        honest_weights: dict[str, torch.Tensor] = {}
        chosen = [s for s in SCENARIOS if s.name == "honest" or not args.only
                  or s.name in args.only]  # fmt: skip
        for scenario in chosen:
            out = work / scenario.name.replace(" ", "-").replace(",", "")
            attacker = None
            if scenario.name != "honest":
                attacker = HostileStudent(
                    urls["mallory"], kinds=scenario.kinds, hoard=scenario.hoard,
                    squat=scenario.squat, flood=scenario.flood, data_dir=str(work / "data"),
                )  # fmt: skip
            started = time.monotonic()
            coordinator = gf(["coordinator", "--output-dir", str(out), "--new-run", *run,
                              *scenario.coordinator], owner)  # fmt: skip
            workers = [gf(["worker", "--name", n, "--device", "cpu"], urls[n])
                       for n in ("alice", "bob")]  # fmt: skip
            if attacker is not None:
                # Once the honest students are at work (version 1 is out): an attacker alone in
                # a run is a class of one, whose work is its own to waste.
                with Database(owner, max_size=1) as db:
                    while _running_version(db) < 1 and coordinator.poll() is None:
                        time.sleep(0.05)
                attacker.start()
            log = coordinator.communicate(timeout=900)[0]
            seconds = time.monotonic() - started
            for w in workers:
                try:
                    w.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    w.kill()
                    print(f"{scenario.name}: a worker did not stop:\n{w.communicate()[0]}",
                          file=sys.stderr)  # fmt: skip
            if coordinator.returncode != 0:
                print(f"{scenario.name}: the coordinator failed:\n{log}", file=sys.stderr)
            report = attacker.stop() if attacker is not None else Report()
            weights = {
                f"{key}.{name}": t
                for key in ("generator_state_dict", "discriminator_state_dict")
                for name, t in torch.load(out / "checkpoints" / "latest.pt",
                                          weights_only=True)[key].items()
            }  # fmt: skip
            if scenario.name == "honest":
                honest_seconds, honest_weights = seconds, weights
            with Database(owner, max_size=1) as db:
                run_id = int(db.fetch_all("dashboard_runs")[0]["id"])  # newest first
                standing = read_standing(db, run_id)
            flagged = [s for s in standing if s.flagged]
            diff = max(
                float((weights[k] - honest_weights[k]).abs().max()
                      / max(float(honest_weights[k].abs().max()), 1e-12))
                for k in weights if weights[k].is_floating_point()
            )  # fmt: skip
            rows.append((
                scenario.name, f"{seconds:.1f}", f"{seconds - honest_seconds:+.1f}",
                str(sum(s.rejections for s in standing if s.student == "mallory")),
                ", ".join(f"{s.student}{' (Q)' if s.quarantined else ''}" for s in flagged)
                or "-",
                "identical" if diff == 0 else f"{diff:.2g}",
                "yes" if coordinator.returncode == 0 else f"NO ({log.splitlines()[-1]})",
            ))  # fmt: skip
            if attacker is not None:
                print(f"{scenario.name}: " + "; ".join(report.lines()), file=sys.stderr)
        print("| scenario | class seconds | delay | attacker strikes | flagged (Q: quarantined) "
              "| model vs honest (max rel. diff) | coordinator finished |")  # fmt: skip
        print("|---|---:|---:|---:|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
