"""Start the dashboard: ``streamlit run app.py`` in a child process, offline and headless.

The database URL (it carries the password) reaches the child in an environment variable, which
only the same user can read, never on its command line, which every user of the machine can.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import IO

from ganfriends.children import child_env, tied_module_command
from ganfriends.errors import GanError
from ganfriends.signals import StopRequest, graceful_stop

DB_URL_ENV = "GANFRIENDS_DASHBOARD_DB_URL"
APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8501
# Like the database, the dashboard is not opened to the network unless asked: anyone who can reach
# the class database runs their own (``ganfriends dashboard --db URL``).
DEFAULT_ADDRESS = "127.0.0.1"
STARTUP_TIMEOUT = 90.0  # seconds; the first start imports torch and pandas on a slow laptop
STOP_GRACE = 10.0  # seconds Streamlit gets to shut down after SIGTERM


class DashboardError(GanError):
    """The dashboard could not be started."""


def require_streamlit() -> None:
    """Fail with the install hint when the ``dashboard`` extra is missing."""
    if importlib.util.find_spec("streamlit") is None:
        raise DashboardError("the dashboard needs Streamlit: pip install 'ganfriends[dashboard]'")


def dashboard_url(port: int, address: str = DEFAULT_ADDRESS) -> str:
    """The address to open in a browser."""
    host = "localhost" if address in ("", "0.0.0.0", "127.0.0.1", "::") else address
    return f"http://{host}:{port}"


def streamlit_command(port: int, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The child's command line (no secret in it)."""
    # Through ganfriends.children: the server dies with the command that started it.
    return tied_module_command(
        "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        # No internet in a classroom, and no data leaves it: no usage statistics.
        "--browser.gatherUsageStats", "false",
        # An installed app, not one being edited: no file watcher, no "rerun on save".
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    )  # fmt: skip


def ensure_port_free(port: int, address: str = DEFAULT_ADDRESS) -> None:
    """Raise :class:`DashboardError` when something already listens on ``address:port``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As a server binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address or "0.0.0.0", port))
        except OSError as exc:
            raise DashboardError(
                f"port {port} is in use ({exc.strerror}): choose another with --port"
            ) from exc


def start_dashboard(
    url: str,
    port: int = DEFAULT_PORT,
    *,
    address: str = DEFAULT_ADDRESS,
    log: IO[str] | None = None,
) -> subprocess.Popen[str]:
    """Start the dashboard server in its own session and return at once.

    Its output goes to ``log`` (inherited when None). It does not receive the caller's Ctrl+C:
    stop it with :func:`stop_dashboard`. :func:`wait_until_ready` waits for it to answer.
    """
    require_streamlit()
    # Checked here, not left to Streamlit: its "port not available" comes seconds later, while
    # the server already on that port would answer wait_until_ready's health check for it.
    ensure_port_free(port, address)
    env = child_env()
    env.update(
        {
            DB_URL_ENV: url,
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return subprocess.Popen(
        streamlit_command(port, address),
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        stdin=subprocess.DEVNULL,  # Streamlit asks no question of a headless server
        env=env,
        text=True,
        start_new_session=True,
    )


def wait_until_ready(
    proc: subprocess.Popen[str],
    port: int,
    *,
    address: str = DEFAULT_ADDRESS,
    timeout: float = STARTUP_TIMEOUT,
    stop: StopRequest | None = None,
) -> None:
    """Block until the server answers its health check; raise if it exits or times out.

    Returns early, without raising, when ``stop`` is requested.
    """
    host = "127.0.0.1" if address in ("", "0.0.0.0") else address
    host = "[::1]" if host == "::" else host
    health = f"http://{host}:{port}/_stcore/health"
    # Loopback only: a proxy from the environment must not see this request.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop is not None and stop.requested:
            return
        code = proc.poll()
        if code is not None:
            raise DashboardError(f"the dashboard exited with status {code} while starting")
        try:
            with opener.open(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if stop is not None:
            stop.event.wait(0.25)
        else:
            time.sleep(0.25)
    raise DashboardError(f"the dashboard did not answer on port {port} within {timeout:.0f} s")


def stop_dashboard(proc: subprocess.Popen[str], grace: float = STOP_GRACE) -> int:
    """SIGTERM (Streamlit shuts down cleanly), then SIGKILL after ``grace`` s; the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def run_dashboard(
    url: str,
    port: int = DEFAULT_PORT,
    *,
    open_browser: bool = False,
    address: str = DEFAULT_ADDRESS,
) -> int:
    """``ganfriends dashboard``: serve until a stop signal; the exit status (130 when stopped).

    SIGINT, SIGTERM and SIGHUP stop the server warmly (:func:`stop_dashboard`); the server also
    dies with this command if it is SIGKILLed (:mod:`ganfriends.children`). Streamlit's own
    output (its address, errors such as a port in use) goes to the terminal.
    """
    with graceful_stop() as stop:
        proc = start_dashboard(url, port, address=address)
        try:
            try:
                wait_until_ready(proc, port, address=address, stop=stop)
            except DashboardError:
                if proc.poll() is not None:
                    return proc.returncode or 1  # it said why on the terminal
                raise
            if not stop.requested:
                link = dashboard_url(port, address)
                print(f"ganfriends dashboard: {link}  (Ctrl+C stops it)", flush=True)
                if open_browser:
                    webbrowser.open(link)
            while not stop.requested and proc.poll() is None:
                stop.event.wait(0.5)
            if not stop.requested:
                return proc.returncode or 0
            return 130
        finally:
            stop_dashboard(proc)
