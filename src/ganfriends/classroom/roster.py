"""``students add --roster``, ``students revoke --all`` and ``students reissue``: a class at once.

Every command here acts on the class database as ``students add NAME`` does
(:func:`class_admin`). New students' URLs hold their passwords, which exist nowhere else: they
are written, readable by the instructor only, before the students' roles are committed, and
removed again if the commit fails (:class:`UrlOutputs`).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from ganfriends.classroom.connect import configured_url
from ganfriends.config import Config
from ganfriends.db import Database, EmbeddedPostgres, default_data_dir, migrate
from ganfriends.db import roster as rosters
from ganfriends.db import students as roles
from ganfriends.db.server import APP_DATABASE, ServerInfo
from ganfriends.errors import GanError

URL_SUFFIX = ".txt"  # --urls-dir: NAME.txt, the URL on one line (opens anywhere)
CSV_HEADER = ("name", "url")


@dataclass(frozen=True)
class ClassAdmin:
    """Who manages the class's roles, and where."""

    url: str  # the instructor's own URL (the embedded server's app role, or --db)
    admin_url: str  # the role that creates students: the embedded superuser, or --db's role
    info: ServerInfo | None  # the embedded server, when the class is on it

    @property
    def lock_databases(self) -> tuple[str, ...]:
        """The embedded server's other databases, closed to students."""
        return ("postgres", "template1") if self.info is not None else ()

    def url_maker(self) -> Callable[[str, str], str]:
        """(name, password) -> the URL that student connects with."""
        if self.info is not None:
            return self.info.role_url
        return roles.student_url_maker(self.url)

    def notes(self, name: str) -> list[str]:
        """What the instructor should know about the URLs this class hands out (after adding
        student ``name``): what a managed server does not give, or an embedded server that
        students elsewhere cannot reach."""
        if self.info is None:
            return roles.server_limits(self.admin_url, name)
        if self.info.host is None:
            return [
                "the embedded server is not listening on the network: these URLs work on this "
                "machine only (ganfriends db start --listen ADDRESS serves the class)"
            ]
        return []


def class_admin(config: Config) -> ClassAdmin:
    """The class of ``config``'s database (the embedded server, started if needed, without
    ``--db``), migrated: the worker functions the students' grants name must exist."""
    url = configured_url(config)
    info = None
    if url is None:
        info = EmbeddedPostgres(default_data_dir()).start()
        url, admin_url = info.local_url(), info.admin_url(APP_DATABASE)
    else:
        admin_url = url
    with Database(url, max_size=1) as db:
        migrate(db)
    return ClassAdmin(url, admin_url, info)


@dataclass
class UrlOutputs:
    """Where new students' URLs go: one file each in ``folder`` (0700; files 0600) and/or rows
    appended to ``table`` (a CSV of name,url, 0600). :meth:`undo` takes back what was written."""

    folder: Path | None = None
    table: Path | None = None
    _written: list[Path] = field(default_factory=list)
    _appended: bool = False
    _table_size: int | None = None  # the CSV's size before (None: it did not exist)

    def check(self) -> None:
        """Refuse outputs that cannot be written, before any student is created."""
        if self.folder is None and self.table is None:
            raise GanError(
                "students add --roster writes the new students' URLs: give --urls-dir DIR "
                "(a file each) or --urls-csv FILE"
            )
        if self.folder is not None and self.folder.exists() and not self.folder.is_dir():
            raise GanError(f"--urls-dir {self.folder} is not a folder")
        if self.table is not None and (self.table.is_dir() or not self.table.parent.is_dir()):
            raise GanError(f"--urls-csv {self.table}: not a file in an existing folder")

    def write(self, urls: Mapping[str, str]) -> None:
        """Write ``urls`` (name -> URL), private to this user."""
        if not urls:
            return
        if self.folder is not None:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.folder.chmod(0o700)  # an existing folder too: it is full of passwords
            for name, url in urls.items():
                path = self.folder / f"{name}{URL_SUFFIX}"
                write_private(path, url + "\n")
                self._written.append(path)
        if self.table is not None:
            self._append_rows(self.table, urls)

    def _append_rows(self, path: Path, urls: Mapping[str, str]) -> None:
        # Appended, never replaced: a re-run for late students keeps the earlier rows, whose
        # passwords exist nowhere else.
        self._table_size = path.stat().st_size if path.exists() else None
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        if self._table_size is None:
            writer.writerow(CSV_HEADER)
        writer.writerows(urls.items())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(rows.getvalue())
        self._appended = True

    def undo(self) -> None:
        """Remove what :meth:`write` wrote (the students were not created after all)."""
        for path in self._written:
            path.unlink(missing_ok=True)
        if self.table is None or not self._appended:
            return
        if self._table_size is None:
            self.table.unlink(missing_ok=True)
        else:
            os.truncate(self.table, self._table_size)

    def describe(self) -> str:
        """Where the URLs are, for the summary line."""
        where = []
        if self.folder is not None:
            where.append(f"{self.folder}/NAME{URL_SUFFIX}")
        if self.table is not None:
            where.append(str(self.table))
        return " and ".join(where)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user only, through a temporary file (a
    reader never sees half a URL, and an existing file's wider mode does not carry over)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    os.replace(temporary, path)


def add_roster(
    config: Config, roster: Path, outputs: UrlOutputs, *, max_connections: int, console: Console
) -> int:
    """``students add --roster FILE``: every missing student of the roster, URLs written."""
    names = rosters.read_roster(roster)
    outputs.check()
    admin = class_admin(config)
    make_url = admin.url_maker()

    def keep(created: Mapping[str, str]) -> None:
        outputs.write({name: make_url(name, password) for name, password in created.items()})

    try:
        result = rosters.add_roster(
            admin.admin_url, names, max_connections=max_connections,
            lock_databases=admin.lock_databases, keep=keep,
        )  # fmt: skip
    except BaseException:
        outputs.undo()
        raise
    if result.created:
        for note in admin.notes(next(iter(result.created))):
            console.print(Text(note, style="yellow"))
        console.print(
            Text(
                f"added {len(result.created)} student(s) ({max_connections} connections each): "
                f"their URLs are in {outputs.describe()}, readable by you only; each student "
                "runs GANFRIENDS_DATABASE_URL='<their URL>' ganfriends worker"
            )
        )
    if result.existing:
        console.print(
            Text(
                f"already students, left as they were (passwords unchanged): "
                f"{', '.join(result.existing)}; `ganfriends students reissue NAME` gives one "
                "a new URL"
            )
        )
    if result.revoked:
        console.print(
            Text(f"of these, revoked (no login): {', '.join(result.revoked)}", style="yellow")
        )
    return 0


def revoke_all(config: Config, *, yes: bool, console: Console) -> int:
    """``students revoke --all``: the class is over; asks first unless ``yes``."""
    if not yes:
        if not sys.stdin.isatty():
            raise GanError("students revoke --all ends the class for every student: confirm "
                           "with --yes")  # fmt: skip
        answer = input("This revokes every student of the class and ends their sessions. "
                       "Type 'yes': ")  # fmt: skip
        if answer.strip() != "yes":
            console.print("nothing changed")
            return 1
    done = rosters.revoke_all(class_admin(config).admin_url)
    for student in done:
        if student.problem:
            console.print(Text(student.problem, style="yellow"))
    released = sum(student.released for student in done)
    console.print(
        f"revoked {len(done)} student(s): no new login, sessions ended, {released} unit(s) back "
        "in the queue (`ganfriends students reissue NAME` lets one back in)"
    )
    return 1 if any(student.problem for student in done) else 0


def reissue(config: Config, name: str, *, output: str | None, console: Console) -> int:
    """``students reissue NAME``: a new URL for a student who lost theirs (or was revoked)."""
    admin = class_admin(config)
    password = roles.reissue_student(admin.admin_url, name)
    url = admin.url_maker()(name, password)
    if output:
        write_private(Path(output), url + "\n")
        console.print(Text(f"{name}'s URL written to {output}"))
    console.print(
        f"new URL for {name} (their old one no longer logs in; sessions already open stay "
        "until they end)"
    )
    print(url)  # the last line: easy to copy or to pipe
    return 0
