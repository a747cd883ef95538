"""URLs, data and socket directories of the embedded server (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from ganfriends.db import EmbeddedPostgres, ServerInfo, default_data_dir


def _info(host: str | None, socket_dir: Path | None = Path("/srv/pg dir/run")) -> ServerInfo:
    return ServerInfo(
        data_dir=Path("/srv/pg"),
        host=host,
        port=6543,
        socket_dir=socket_dir,
        user="ganfriends",
        password="pw-_x" if host else None,
        pid=1,
    )


def test_local_url_uses_the_socket() -> None:
    url = _info(None).url()
    assert conninfo_to_dict(url) == {
        "user": "ganfriends",
        "dbname": "ganfriends",
        "host": "/srv/pg dir/run",
        "port": "6543",
    }
    assert conninfo_to_dict(_info(None).admin_url())["user"] == "postgres"


def test_tcp_url_carries_user_and_password() -> None:
    assert _info("10.0.0.5").url() == "postgresql://ganfriends:pw-_x@10.0.0.5:6543/ganfriends"
    assert _info("::1").url("other") == "postgresql://ganfriends:pw-_x@[::1]:6543/other"
    wildcard = conninfo_to_dict(_info("*").url())
    assert wildcard["host"] not in ("*", "0.0.0.0", "")  # an address students can reach
    assert wildcard["password"] == "pw-_x"


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GANFRIENDS_PG_DIR", str(tmp_path / "pg"))
    assert default_data_dir() == tmp_path / "pg"
    monkeypatch.delenv("GANFRIENDS_PG_DIR")
    assert default_data_dir().parts[-2:] == ("ganfriends", "postgres")


def test_long_paths_put_the_socket_in_tmp(tmp_path: Path) -> None:
    short = EmbeddedPostgres(tmp_path / "pg")
    assert short._socket_dir() == tmp_path / "pg" / "run"
    deep = EmbeddedPostgres(tmp_path / ("x" * 120))
    socket_dir = deep._socket_dir()
    assert socket_dir.parent == Path("/tmp") and len(str(socket_dir)) < 60
    assert socket_dir == EmbeddedPostgres(tmp_path / ("x" * 120))._socket_dir()  # stable
