"""A private one-node Slurm cluster on localhost: munged, slurmctld and slurmd in one directory.

Debian's ``slurm-wlm`` (22.05) is enough; nothing of the system's is read or touched: the
config, munge's key and socket, the daemons' state and logs live under the directory (the spool,
with its socket paths, in a short temp dir), the ports are free ones, and every client command
finds the cluster through ``SLURM_CONF``. No
systemd and no cgroups: processes are tracked through /proc (``proctrack/linuxproc``). The
daemons run in the foreground as this process's children, so stopping them needs no pid files,
and as whoever runs the tests (``SlurmUser``): root is not needed once the packages are there.
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.waiting import wait_until

# Debian installs the daemons in /usr/sbin, which is not on an ordinary user's PATH.
SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin"])
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
NODE_CPUS = 2
DONE_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def find_program(name: str) -> str | None:
    """``name`` on PATH, else in the sbin folders."""
    return shutil.which(name) or shutil.which(name, path=SBIN)


def missing_programs() -> list[str]:
    """The programs a one-node cluster needs that are not installed."""
    return [name for name in PROGRAMS if find_program(name) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """True when nothing on this machine listens on ``port``."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def first_job_id() -> int:
    """A first job id whose jobs' rendezvous ports (20000 + id mod 10000: cluster/slurm.py) are
    free. Each test's cluster numbers its jobs from here: were every cluster's first job 1, a
    job could meet a store on 20001 that a process of an earlier test's job still holds, and die
    with it (seen in a fresh-clone run)."""
    while True:
        first = random.randrange(1, 9990)
        if all(port_free(20000 + first + i) for i in range(4)):  # a test submits at most 2
            return first


def slurm_conf(root: Path, user: str, spool: Path) -> str:
    """A minimal slurm.conf: one node, ``localhost``, with NODE_CPUS cores in one partition."""
    return f"""\
ClusterName=ganfriends-test
FirstJobId={first_job_id()}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={root / "munge.socket"}
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={spool}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
# The node has NODE_CPUS cores whatever the machine has: a 1-core runner is not drained.
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={NODE_CPUS} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """The daemons of a cluster under ``root``; clients find it through ``SLURM_CONF=conf``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._daemons: dict[str, subprocess.Popen[bytes]] = {}
        # slurmd's spool holds a job step's Unix socket, named after the job: under a pytest
        # temp path (an xdist worker's, a random first job id) it outgrew the 108-byte limit.
        self.spool = Path(tempfile.mkdtemp(prefix="gf-slurm-"))

    def start(self, timeout: float = 30) -> None:
        """Start munged, slurmctld and slurmd; return once the node takes jobs."""
        (self.root / "state").mkdir(parents=True)
        self.conf.write_text(slurm_conf(self.root, getpass.getuser(), self.spool))
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        # --force: munged refuses a socket folder that others cannot traverse (a 0700 tmp dir),
        # and refuses to run as root without it.
        self._spawn(
            "munged", "--foreground", "--force", f"--socket={self.root / 'munge.socket'}",
            f"--key-file={key}", f"--pid-file={self.root / 'munged.pid'}",
            f"--log-file={self.root / 'munged.log'}", f"--seed-file={self.root / 'munged.seed'}",
        )  # fmt: skip
        self._until(lambda: (self.root / "munge.socket").exists(), timeout, "munged's socket")
        self._spawn("slurmctld", "-D")
        self._spawn("slurmd", "-D", "-N", "localhost")
        self._until(lambda: self._node_state() == "idle", timeout, "an idle node")

    def job_state(self, job_id: str) -> str:
        """The job's state as slurmctld has it (it keeps a finished job for MinJobAge, 300 s)."""
        out = self._run("scontrol", "show", "job", "--oneliner", job_id)
        fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
        return fields.get("JobState", "UNKNOWN")

    def wait_for(self, job_id: str, timeout: float) -> str:
        """Wait until the job ends; its final state. One still running at ``timeout`` is
        cancelled, and the test fails."""

        def ended() -> str | None:
            state = self.job_state(job_id)
            return state if state in DONE_STATES else None

        try:
            return wait_until(
                ended, lambda: f"job {job_id} to end (now {self.job_state(job_id)})",
                timeout=timeout, interval=0.5,
            )  # fmt: skip
        except AssertionError:
            self.cancel(job_id)
            raise

    def cancel(self, job_id: str) -> None:
        """Cancel the job (scancel)."""
        self._run("scancel", job_id)

    def logs(self) -> str:
        """The end of each daemon's log, to explain a failure."""
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            for log in (self.root / f"{name}.out", self.root / f"{name}.log"):
                if log.exists() and log.stat().st_size:
                    lines = log.read_text(errors="replace").splitlines()[-20:]
                    parts.append(f"--- {log}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons (slurmd first, munged last)."""
        ctld = self._daemons.get("slurmctld")
        try:
            if ctld is not None and ctld.poll() is None:
                self._run("scancel", f"--user={getpass.getuser()}")
                self._until(lambda: not self._run("squeue", "--noheader").strip(), 15, "no job")
        finally:
            self._stop_daemons()
            shutil.rmtree(self.spool, ignore_errors=True)

    def _stop_daemons(self) -> None:
        for daemon in reversed(self._daemons.values()):
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self._daemons.clear()

    def _spawn(self, name: str, *args: str) -> None:
        program = find_program(name)
        assert program is not None, f"{name} is not installed"
        log = (self.root / f"{name}.out").open("wb")
        self._daemons[name] = subprocess.Popen(
            [program, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def _run(self, name: str, *args: str) -> str:
        program = find_program(name)
        assert program is not None, f"{name} is not installed"
        result = subprocess.run(
            [program, *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        return result.stdout

    def _node_state(self) -> str:
        return self._run("sinfo", "--noheader", "--format=%t").strip()

    def _until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        def ready_and_alive() -> bool:
            dead = [name for name, d in self._daemons.items() if d.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited while waiting for {what}\n{self.logs()}")
            return ready()

        wait_until(ready_and_alive, lambda: f"{what}\n{self.logs()}", timeout=timeout, interval=0.2)


@contextmanager
def one_node_cluster(root: Path) -> Iterator[SlurmCluster]:
    """A running cluster under ``root``; its daemons are stopped on the way out, also on error."""
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
