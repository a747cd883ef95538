"""``ganfriends dashboard``: a read-only web page of a class run, served by Streamlit.

Install with the ``dashboard`` extra (``pip install 'ganfriends[dashboard]'``). The page reads
the database alone, so it runs on any machine that reaches it; this package imports Streamlit
only in the child process that serves the page.
"""

from __future__ import annotations

from ganfriends.dashboard.launch import (
    DB_URL_ENV,
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    DashboardError,
    dashboard_url,
    run_dashboard,
    start_dashboard,
    stop_dashboard,
    wait_until_ready,
)

__all__ = [
    "DB_URL_ENV",
    "DEFAULT_ADDRESS",
    "DEFAULT_PORT",
    "DashboardError",
    "dashboard_url",
    "run_dashboard",
    "start_dashboard",
    "stop_dashboard",
    "wait_until_ready",
]
