"""A real HTTP server on 127.0.0.1 in a thread, with scripted failures, for fake platform APIs.

Subclasses implement ``route(method, path, headers, body) -> (status, headers, json_body)`` and
check each request against the documented format. Problems found are kept in ``violations``
(tests assert it stays empty) and answered with HTTP 400, as the platform would.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """A canned answer for the next ``times`` matching requests."""

    status: int
    times: int = 1
    retry_after: str | None = None
    body: Any = None
    path_contains: str = ""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class FakeServer:
    """Base class: start/stop, request log, scripted failures, violations."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._script: list[Scripted] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra_headers, payload = server._dispatch(self.command, self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra_headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- behaviour ---------------------------------------------------------------------------
    def script(self, status: int, *, times: int = 1, retry_after: str | None = None, body: Any = None,
               path_contains: str = "") -> None:
        """Answer the next ``times`` requests (whose path contains ``path_contains``) with ``status``."""
        with self.lock:
            self._script.append(Scripted(status, times, retry_after, body, path_contains))

    def violation(self, message: str) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.violations.append(message)
        return 400, {}, {"error": {"message": f"fake: {message}", "code": 100, "status": "INVALID_ARGUMENT"}}

    def _dispatch(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        with self.lock:
            scripted = None
            for s in self._script:
                if s.times > 0 and s.path_contains in path:
                    s.times -= 1
                    scripted = s
                    break
            self._script = [s for s in self._script if s.times > 0]
        if scripted is not None:
            extra = {"Retry-After": scripted.retry_after} if scripted.retry_after is not None else {}
            payload = scripted.body if scripted.body is not None else {
                "error": {"message": f"fake scripted {scripted.status}", "code": scripted.status}
            }
            result = (scripted.status, extra, payload)
        else:
            result = self.route(method, path, headers, body)
        with self.lock:
            self.requests.append(Recorded(method, path, dict(headers), body, result[0]))
        return result

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        raise NotImplementedError


#: A hashed identifier as the ad platforms take it: SHA-256, lower-case hex.
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class FakeAudienceServer(FakeServer):
    """Base class of the fake ad platforms: what they count per identifier, and hashes to reject."""

    def __init__(self) -> None:
        super().__init__()
        self.add_counts: Counter[tuple[str, str]] = Counter()
        self.remove_counts: Counter[tuple[str, str]] = Counter()
        self.batch_sizes: list[int] = []
        self.reject: set[str] = set()
