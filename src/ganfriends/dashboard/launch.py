"""Start the dashboard: ``streamlit run app.py`` in a child process, offline and headless.

The database URL (it carries the password) reaches the child in an environment variable, which
only the same user can read, never on its command line, which every user of the machine can.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import IO

from ganfriends.errors import GanError

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
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        # No internet in a classroom, and no data leaves it: no usage statistics.
        "--browser.gatherUsageStats", "false",
        # An installed app, not one being edited: no file watcher, no "rerun on save".
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


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
    env = dict(os.environ)
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
) -> None:
    """Block until the server answers its health check; raise if it exits or times out."""
    host = "127.0.0.1" if address in ("", "0.0.0.0") else address
    host = "[::1]" if host == "::" else host
    health = f"http://{host}:{port}/_stcore/health"
    # Loopback only: a proxy from the environment must not see this request.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise DashboardError(f"the dashboard exited with status {code} while starting")
        try:
            with opener.open(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
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
    """``ganfriends dashboard``: serve the dashboard until Ctrl+C; the exit status (130 on Ctrl+C).

    Streamlit's own output (its address, errors such as a port in use) goes to the terminal.
    """
    proc = start_dashboard(url, port, address=address)
    try:
        try:
            wait_until_ready(proc, port, address=address)
        except DashboardError:
            if proc.poll() is not None:
                return proc.returncode or 1  # it said why on the terminal
            raise
        link = dashboard_url(port, address)
        print(f"ganfriends dashboard: {link}  (Ctrl+C stops it)", flush=True)
        if open_browser:
            webbrowser.open(link)
        return proc.wait()
    except KeyboardInterrupt:
        stop_dashboard(proc)
        return 130
    finally:
        if proc.poll() is None:
            stop_dashboard(proc)
