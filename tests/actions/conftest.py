"""Fixtures for the built-in action tests: contexts on a real workspace, a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ordinance.actions import ActionContext, default_registry


@pytest.fixture
def make_ctx(workspace: Path) -> Callable[..., ActionContext]:
    def make(**kw: Any) -> ActionContext:
        base: dict[str, Any] = dict(
            execution_id="00000000-0000-4000-8000-000000000001", plan_id="11111111-1111-4111-8111-111111111111",
            step_id="00000000-0000-4000-8000-000000000002", attempt=1, action="test", workspace=str(workspace),
            environment={}, deadline_ms=int(time.time() * 1000) + 30_000,
        )
        base.update(kw)
        return ActionContext(**base)

    return make


@pytest.fixture
def call(make_ctx: Callable[..., ActionContext]) -> Callable[..., Any]:
    """Run built-in action ``name`` on ``payload`` the way the engine does (parse, then call)."""

    def do(name: str, payload: dict[str, Any], ctx: ActionContext | None = None, **ctx_kw: Any) -> Any:
        spec = default_registry.get(name)
        assert spec is not None, name
        parsed = spec.parse_payload(payload)
        ctx = ctx or make_ctx(action=name, **ctx_kw)
        if spec.is_async:
            return asyncio.run(spec.func(parsed, ctx))
        return spec.func(parsed, ctx)

    return do


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        if path == "/json":
            self._send(200, b'{"ok": true, "n": 1}', "application/json")
        elif path == "/echo":
            doc = {"method": self.command, "body": body.decode(), "content_type": self.headers.get("Content-Type"),
                   "x_test": self.headers.get("X-Test")}
            self._send(200, json.dumps(doc).encode(), "application/problem+json")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status body")
        elif path == "/redirect":
            self._send(302, b"", extra={"Location": "/json"})
        elif path == "/big":
            self._send(200, b"x" * (2 * 1024 * 1024 + 17), "application/json")
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"slow")
        elif path == "/notjson":
            self._send(200, b"{not json", "application/json")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _route


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (never an external address)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
