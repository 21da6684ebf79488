"""A loopback stand-in for the few Hugging Face Hub API routes that pushes and downloads use.

No real Hub can be reached from the tests, and no local Hub server exists on PyPI that accepts uploads
(see reference/hf-stack.md section 7), so this is a small stdlib HTTP server on 127.0.0.1 that keeps
repositories in memory: enough for `create_repo`, `create_branch`, `upload_folder` (legacy LFS "basic"
transfer, so clients must run with Xet disabled), `hf_hub_download`, `HfFileSystem` globbing,
`datasets.load_dataset(repo_id, config)` and `from_pretrained(repo_id)`.

It is deliberately bounded: request bodies and total stored bytes are capped, sockets time out, and
`HubStandIn` is a context manager that shuts the server thread down. Two switches exercise failure
paths: `require_auth` (401 unless `Authorization: Bearer <a valid token>`) and `fail_next(...)`, which
answers matching requests with a chosen status as the real Hub would (X-Error-Code/X-Error-Message).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_STORED_BYTES = 256 * 1024 * 1024
SOCKET_TIMEOUT_S = 10
USER = "tester"
VALID_TOKEN = "hf_standin_valid_token"
# Extensions the stand-in asks clients to send through LFS, as the Hub's default .gitattributes does.
LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".arrow", ".pt", ".pth", ".h5", ".msgpack", ".npz")
_TYPE_FROM_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class _File:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, _File]] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


@dataclass
class _Failure:
    status: int
    method: str | None
    path_pattern: str
    error_code: str | None
    message: str
    times: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, standin: HubStandIn):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin


class HubStandIn:
    """In-memory Hub on a loopback port. Use as a context manager; `url` is the endpoint to patch in."""

    def __init__(self, *, require_auth: bool = False):
        self.require_auth = require_auth
        self.valid_tokens = {VALID_TOKEN}
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.lfs_blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request, for debugging
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubStandIn:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test helpers
    def fail_next(
        self,
        status: int,
        path_pattern: str,
        *,
        method: str | None = None,
        error_code: str | None = None,
        message: str = "",
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests whose path matches `path_pattern` (regex) with `status`."""
        with self._lock:
            self._failures.append(_Failure(status, method, path_pattern, error_code, message, times))

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        return {path: entry.content for path, entry in repo.commits[repo.resolve(revision)].items()}

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if (failure.method in (None, method)) and re.search(failure.path_pattern, path):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _stored_bytes(self) -> int:
        blobs = sum(len(blob) for blob in self.lfs_blobs.values())
        regular = sum(
            len(entry.content)
            for repo in self.repos.values()
            for files in repo.commits.values()
            for entry in files.values()
            if not entry.lfs
        )
        return blobs + regular


class _HubError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    server: _Server

    def log_message(self, format, *args) -> None:  # noqa: A002 - silence the default stderr access log
        pass

    # ------------------------------------------------------------------ plumbing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        standin = self.server.standin
        split = urlsplit(self.path)
        path, self.query = unquote(split.path), parse_qs(split.query)
        status, self.body = 500, None
        try:
            self.body = self._read_body()
            failure = standin._take_failure(method, path)
            if failure is not None:
                raise _HubError(failure.status, failure.message, failure.error_code)
            if standin.require_auth and not path.startswith("/lfs-upload/"):
                self._check_auth()
            with standin._lock:
                status, headers, payload = self._route(method, path)
        except _HubError as error:
            status, payload = error.status, json.dumps({"error": error.message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
            if error.error_code:
                headers["X-Error-Code"] = error.error_code
            if self.body is None:  # the request body was not read: the connection cannot be reused
                headers["Connection"], self.close_connection = "close", True
        except Exception as error:  # a bug in the stand-in: report it to the client instead of hanging
            status, payload, headers = 500, repr(error).encode(), {"Content-Type": "text/plain"}
        standin.requests.append((method, path, status))
        self._respond(method, status, headers, payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise _HubError(413, "request body too large for the stand-in")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _HubError(413, "request body too large for the stand-in")
        return self.rfile.read(length) if length else b""

    def _respond(self, method: str, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _check_auth(self) -> None:
        header = self.headers.get("Authorization")
        if header is None:
            raise _HubError(401, "Invalid username or password.")
        token = header.removeprefix("Bearer ").strip()
        if token not in self.server.standin.valid_tokens:
            raise _HubError(401, "Invalid credentials in Authorization header")

    def _json(self):
        if not self.body:
            return {}
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(self.body.decode())
            return {key: values if len(values) > 1 else values[0] for key, values in form.items()}
        return json.loads(self.body)

    @staticmethod
    def _ok(payload, status: int = 200) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    # ------------------------------------------------------------------ routes
    def _route(self, method: str, path: str):
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo()
        if method == "GET" and path == "/api/whoami-v2":
            return self._ok({"type": "user", "name": USER, "auth": {"accessToken": {"role": "write"}}})
        if method == "POST" and path == "/api/validate-yaml":
            return self._ok({})
        if method == "PUT" and path.startswith("/lfs-upload/"):
            return self._lfs_put(path.removeprefix("/lfs-upload/"))
        match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
        if match:
            repo = self._repo(_TYPE_FROM_PLURAL[match[1]], match[2])
            return self._api(method, repo, match[3] or "")
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if method == "POST" and match:
            self._repo(_TYPE_FROM_PLURAL.get(match[1] or "models"), match[2])
            return self._lfs_batch()
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if method in ("GET", "HEAD") and match:
            repo = self._repo(_TYPE_FROM_PLURAL.get(match[1] or "models"), match[2])
            return self._resolve(repo, match[3], match[4])
        raise _HubError(404, f"no route {method} {path} in the stand-in")

    def _repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self.server.standin.repos.get((repo_type, repo_id))
        if repo is None:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _create_repo(self):
        payload = self._json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        repos = self.server.standin.repos
        if (repo_type, repo_id) in repos:
            raise _HubError(409, "You already created this repo")
        sha = hashlib.sha1(f"{repo_type}/{repo_id}/initial".encode()).hexdigest()
        repo = _Repo(repo_type, repo_id, private=payload.get("visibility") == "private")
        repo.branches["main"], repo.commits[sha] = sha, {".gitattributes": _File(b"*.parquet filter=lfs\n", False)}
        repos[(repo_type, repo_id)] = repo
        base = self.server.standin.url
        return self._ok({"url": f"{base}/{_URL_PREFIX[repo_type]}{repo_id}", "name": repo_id, "id": repo_id})

    def _api(self, method: str, repo: _Repo, rest: str):
        head, _, tail = rest.partition("/")
        if method == "GET" and head in ("", "revision"):
            return self._repo_info(repo, tail or "main")
        if method == "POST" and head == "preupload":
            self._snapshot(repo, tail)
            files = self._json()["files"]
            modes = [
                {"path": f["path"], "uploadMode": self._upload_mode(f), "shouldIgnore": False, "oid": None}
                for f in files
            ]
            return self._ok({"files": modes, "commitOid": repo.resolve(tail)})
        if method == "POST" and head == "commit":
            return self._commit(repo, tail)
        if method == "POST" and head == "branch":
            payload = self._json()
            if tail in repo.branches:
                raise _HubError(409, f"Reference {tail} already exists")
            start = repo.resolve(payload.get("startingPoint") or "main")
            if start is None:
                raise _HubError(404, "Invalid starting point", "RevisionNotFound")
            repo.branches[tail] = start
            return self._ok({})
        if method == "GET" and head == "tree":
            revision, _, folder = tail.partition("/")
            return self._tree(repo, revision, folder)
        if method == "POST" and head == "paths-info":
            files = self._snapshot(repo, tail)
            paths = self._json().get("paths", [])
            paths = [paths] if isinstance(paths, str) else paths
            return self._ok([entry for p in paths if (entry := self._entry(files, p.strip("/"))) is not None])
        raise _HubError(404, f"no route {method} /api/.../{rest} in the stand-in")

    @staticmethod
    def _upload_mode(file: dict) -> str:
        return "lfs" if file["path"].endswith(LFS_SUFFIXES) or file["size"] > 10 * 1024 * 1024 else "regular"

    def _snapshot(self, repo: _Repo, revision: str) -> dict[str, _File]:
        sha = repo.resolve(unquote(revision) or "main")
        if sha is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def _repo_info(self, repo: _Repo, revision: str):
        files = self._snapshot(repo, revision)
        siblings = [{"rfilename": path, "size": len(entry.content)} for path, entry in sorted(files.items())]
        author = repo.repo_id.split("/")[0]
        return self._ok(
            {
                "id": repo.repo_id,
                "_id": repo.repo_id,
                "author": author,
                "sha": repo.resolve(revision),
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z",
                "createdAt": "2026-01-01T00:00:00.000Z",
                "siblings": siblings,
            }
        )

    @staticmethod
    def _entry(files: dict[str, _File], path: str) -> dict | None:
        if path in files:
            entry = files[path]
            item = {"type": "file", "oid": entry.git_oid, "size": len(entry.content), "path": path}
            if entry.lfs:
                item["lfs"] = {"oid": entry.sha256, "size": len(entry.content), "pointerSize": 134}
            return item
        if any(name.startswith(path + "/") for name in files):
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
        return None

    def _tree(self, repo: _Repo, revision: str, folder: str):
        files = self._snapshot(repo, revision)
        folder = folder.strip("/")
        prefix = f"{folder}/" if folder else ""
        if folder and self._entry(files, folder) is None:
            raise _HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        paths: set[str] = set()
        for name in files:
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            if recursive:
                paths.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            else:
                paths.add(prefix + parts[0])
        return self._ok([self._entry(files, p) for p in sorted(paths)])

    def _commit(self, repo: _Repo, revision: str):
        branch = unquote(revision)
        if branch not in repo.branches:
            raise _HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        files = dict(repo.commits[repo.branches[branch]])
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = _File(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                blob = self.server.standin.lfs_blobs.get(value["oid"])
                if blob is None:
                    raise _HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = _File(blob, lfs=True)
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {name: entry for name, entry in files.items() if not name.startswith(prefix)}
        if self.server.standin._stored_bytes() > MAX_STORED_BYTES:
            raise _HubError(413, "the stand-in stores at most MAX_STORED_BYTES")
        sha = hashlib.sha1(repo.branches[branch].encode() + self.body).hexdigest()
        repo.commits[sha], repo.branches[branch] = files, sha
        url = f"{self.server.standin.url}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}"
        return self._ok({"commitUrl": url, "commitOid": sha, "pullRequestUrl": None})

    def _lfs_batch(self):
        payload = self._json()
        objects = []
        for item in payload.get("objects", []):
            answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.server.standin.lfs_blobs:
                answer["actions"] = {"upload": {"href": f"{self.server.standin.url}/lfs-upload/{item['oid']}"}}
            objects.append(answer)
        return (
            200,
            {"Content-Type": "application/vnd.git-lfs+json"},
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
        )

    def _lfs_put(self, oid: str):
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise _HubError(400, f"uploaded content does not hash to {oid}")
        standin = self.server.standin
        if standin._stored_bytes() + len(self.body) > MAX_STORED_BYTES:
            raise _HubError(413, "the stand-in stores at most MAX_STORED_BYTES")
        standin.lfs_blobs[oid] = self.body
        return 200, {}, b""

    def _resolve(self, repo: _Repo, revision: str, path: str):
        sha = repo.resolve(unquote(revision))
        if sha is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        entry = repo.commits[sha].get(path)
        if entry is None:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(len(entry.content))
        content, status = entry.content, 200
        requested = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if requested and content:
            start = int(requested[1]) if requested[1] else max(0, len(content) - int(requested[2] or 0))
            end = int(requested[2]) if requested[1] and requested[2] else len(content) - 1
            end = min(end, len(content) - 1)
            if start >= len(content):
                return HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{len(content)}"}, b""
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
        headers["Content-Length"] = str(len(content))
        return status, headers, content
