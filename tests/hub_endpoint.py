"""A local stand-in for the Hugging Face Hub: just enough of its HTTP API for the real
``huggingface_hub`` client to create a repo, commit files (preupload, LFS batch + PUT, NDJSON
commit) and download them (``resolve``). It records what arrives so tests can read it back.

Like the Hub, it answers "lfs" for binary files (safetensors, PNG) and "regular" for text. The
client then uploads LFS content through Xet when ``hf_xet`` is installed; this endpoint has no Xet
storage, so tests set ``HF_HUB_DISABLE_XET=1`` (the client's documented switch) to use the plain
HTTP LFS transfer instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

BINARY_SUFFIXES = (".safetensors", ".png", ".bin", ".pt")


@dataclass
class Commit:
    """One commit as it arrived."""

    summary: str
    files: dict[str, bytes]
    oid: str


@dataclass
class HubState:
    """Everything the endpoint holds; tests read and steer it."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    commits: dict[str, list[Commit]] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 hex -> content
    authorizations: list[str] = field(default_factory=list)  # Authorization headers seen
    requests: list[str] = field(default_factory=list)  # "METHOD path"
    fail_with: int | None = None  # answer every request with this status
    commit_delay: float = 0.0  # seconds each commit takes (a slow Hub)
    # Commits wait until it is set: a Hub that takes as long as a test wants (set by default).
    commit_gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.commit_gate.set()

    def files(self, repo_id: str) -> dict[str, bytes]:
        """The repo's files at its head."""
        with self.lock:
            return dict(self.repos.get(repo_id, {}))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    # ------------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, payload: Any = None, *, headers: dict[str, str] | None = None
    ) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _begin(self) -> tuple[HubState, str] | None:
        state = self.server.state
        path = urlsplit(self.path).path
        with state.lock:
            state.requests.append(f"{self.command} {path}")
            if self.headers.get("Authorization"):
                state.authorizations.append(self.headers["Authorization"])
        if state.fail_with is not None:
            self._body()
            self._send(state.fail_with, {"error": "the test endpoint is failing on purpose"})
            return None
        return state, path

    # ------------------------------------------------------------------ routes

    def do_POST(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        state, path = begun
        body = self._body()
        base = self.server.url
        if path == "/api/repos/create":
            data = json.loads(body)
            repo_id = f"{data['organization']}/{data['name']}"
            with state.lock:
                exists = repo_id in state.repos
                state.repos.setdefault(repo_id, {})
                state.commits.setdefault(repo_id, [])
            self._send(409 if exists else 200, {"url": f"{base}/{repo_id}", "name": repo_id})
        elif path == "/api/validate-yaml":  # the model card's front matter, checked before upload
            self._validate_yaml(json.loads(body)["content"])
        elif path.startswith("/api/models/") and "/preupload/" in path:
            files = json.loads(body)["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if f["path"].endswith(BINARY_SUFFIXES) else "regular",
                    "shouldIgnore": False,
                }
                for f in files
            ]
            self._send(200, {"files": modes, "commitOid": "0" * 40})
        elif path.endswith(".git/info/lfs/objects/batch"):
            objects = []
            for obj in json.loads(body)["objects"]:
                entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
                with state.lock:
                    known = obj["oid"] in state.lfs
                if not known:
                    entry["actions"] = {"upload": {"href": f"{base}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            self._send(200, {"transfer": "basic", "objects": objects})
        elif path.startswith("/api/models/") and "/commit/" in path:
            self._commit(state, path, body)
        else:
            self._send(404, {"error": f"not implemented here: POST {path}"})

    def _validate_yaml(self, content: str) -> None:
        if content.startswith("---\n"):
            front = content[4:].partition("\n---")[0]
            try:
                if not isinstance(yaml.safe_load(front), dict):
                    raise yaml.YAMLError("the front matter is not a mapping")
            except yaml.YAMLError as exc:
                self._send(400, {"error": f"invalid YAML front matter: {exc}"})
                return
        self._send(200, {"errors": [], "warnings": []})

    def _commit(self, state: HubState, path: str, body: bytes) -> None:
        repo_id = unquote(path[len("/api/models/") : path.index("/commit/")])
        time.sleep(state.commit_delay)
        if not state.commit_gate.wait(timeout=120):
            raise TimeoutError("the test never opened the Hub's commit gate")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        summary = lines[0]["value"]["summary"]
        files: dict[str, bytes] = {}
        with state.lock:
            for item in lines[1:]:
                value = item["value"]
                if item["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "lfsFile":
                    if value["oid"] not in state.lfs:
                        self._send(422, {"error": f"LFS object {value['oid']} was never uploaded"})
                        return
                    files[value["path"]] = state.lfs[value["oid"]]
            if repo_id not in state.repos:
                self._send(404, {"error": "Repository not found"}, headers=_not_found("Repo"))
                return
            oid = hashlib.sha1(body).hexdigest()
            state.repos[repo_id].update(files)
            state.commits[repo_id].append(Commit(summary, files, oid))
        self._send(
            200,
            {"commitUrl": f"{self.server.url}/{repo_id}/commit/{oid}", "commitOid": oid},
        )

    def do_PUT(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        state, path = begun
        body = self._body()
        oid = path.rsplit("/", 1)[-1]
        if not path.startswith("/lfs-upload/") or hashlib.sha256(body).hexdigest() != oid:
            self._send(400, {"error": "bad LFS upload"})
            return
        with state.lock:
            state.lfs[oid] = body
        self._send(200, {})

    def do_HEAD(self) -> None:
        self._resolve()

    def do_GET(self) -> None:
        self._resolve()

    def _resolve(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        state, path = begun
        if "/resolve/" not in path:
            self._send(404, {"error": f"not implemented here: {self.command} {path}"})
            return
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        filename = unquote(rest.partition("/")[2])
        with state.lock:
            repo = state.repos.get(unquote(repo_id))
            commits = state.commits.get(unquote(repo_id)) or []
            content = None if repo is None else repo.get(filename)
        if repo is None:
            self._send(404, {"error": "Repository not found"}, headers=_not_found("Repo"))
            return
        if content is None:
            self._send(404, {"error": "Entry not found"}, headers=_not_found("Entry"))
            return
        etag = hashlib.sha256(content).hexdigest()
        commit = commits[-1].oid if commits else "0" * 40
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(content)


def _not_found(what: str) -> dict[str, str]:
    return {"X-Error-Code": f"{what}NotFound", "X-Error-Message": f"{what} not found"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@dataclass
class LocalHub:
    """A running endpoint: its URL and its state."""

    url: str
    state: HubState


@contextmanager
def local_hub() -> Iterator[LocalHub]:
    """Serve a fresh endpoint on a free port for the duration of the block."""
    state = HubState()
    server = _Server(state)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="local-hub", daemon=True
    )
    thread.start()
    try:
        yield LocalHub(server.url, state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def client_env(hub: LocalHub, home: Path) -> dict[str, str]:
    """Environment for a subprocess that talks to ``hub`` with the real client: plain HTTP
    uploads (no Xet storage here) and a cache of its own."""
    return {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home)}


def configure_client(monkeypatch: pytest.MonkeyPatch, hub: LocalHub, home: Path) -> None:
    """The same for this process. The client reads these variables when it is imported, so its
    constants are set too (its configuration, not its behaviour)."""
    from huggingface_hub import constants

    for name, value in client_env(hub, home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
