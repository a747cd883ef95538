"""How the dashboard server is started: offline flags, no secret on the command line, ports."""

from __future__ import annotations

import socket

import pytest

from ganfriends.dashboard import DashboardError, dashboard_url, start_dashboard
from ganfriends.dashboard.launch import APP, ensure_port_free, streamlit_command

SECRET_URL = "postgresql://ganfriends:s3cret@db.example:5433/ganfriends"


def test_the_command_is_headless_offline_and_carries_no_secret() -> None:
    command = streamlit_command(8599)
    # Through ganfriends.children, so that the server dies with the command that starts it.
    assert command[1:6] == ["-m", "ganfriends.children", "streamlit", "run", str(APP)]
    flags = dict(zip(command[6::2], command[7::2], strict=True))
    assert flags["--server.port"] == "8599"
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert not any("s3cret" in part or "postgresql" in part for part in command)
    assert APP.is_file()
    assert dashboard_url(8599) == "http://localhost:8599"
    assert dashboard_url(8599, "10.1.2.3") == "http://10.1.2.3:8599"


def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(DashboardError, match=f"port {port} is in use"):
            start_dashboard(SECRET_URL, port)
    ensure_port_free(port)  # closed: free again
