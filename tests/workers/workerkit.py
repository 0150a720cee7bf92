"""Helpers for the worker suite: worker processes, log files, a webhook receiver, journal checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

LEASE_MS = 5_000  # tests that do not wait for recovery: generous, so a loaded machine never closes a live execution
SHORT_LEASE_MS = 1_000  # tests that wait for another worker's recovery



def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy (a generous bound, never a timing assertion)."""
    t0 = time.monotonic()
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


class WorkerProc:
    """One `ordinance worker` process, logging to a file."""

    def __init__(self, popen: subprocess.Popen, log: Path) -> None:
        self.popen, self.log = popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def owner(self, timeout: float = 20.0) -> str:
        m = wait_for(lambda: re.search(r"worker (\S+) started", self.text()), timeout, f"worker start ({self.log})")
        return m.group(1)

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the worker and its process group (its action pool included)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        return self.popen.wait(timeout)


class Workers:
    """Starts worker processes and makes sure none outlives the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[WorkerProc] = []

    def start(self, store_url: str, *args: str, lease_ms: int = LEASE_MS, workspace: Path | None = None,
              env: dict[str, str] | None = None) -> WorkerProc:
        log = self.tmp_path / f"worker-{len(self.procs)}.log"
        ws = workspace or self.tmp_path
        full_env = dict(os.environ, ORDINANCE_LEASE_MS=str(lease_ms))
        full_env.pop("ORDINANCE_STORE", None)
        if env:
            full_env.update(env)
        with open(log, "wb") as fh:
            p = subprocess.Popen(
                [sys.executable, "-m", "ordinance.cli.app", "worker", "--store", store_url, "--workspace", str(ws),
                 *args],
                stdout=subprocess.DEVNULL, stderr=fh, env=full_env, cwd=str(self.tmp_path), start_new_session=True,
            )
        wp = WorkerProc(p, log)
        self.procs.append(wp)
        return wp

    def cleanup(self) -> None:
        for wp in self.procs:
            if wp.popen.poll() is None:
                wp.kill()


def records(store, execution_id: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in store.journal(execution_id)]


# -- a webhook receiver -------------------------------------------------------------------------------------------
class Hook:
    """An HTTP server on 127.0.0.1 that records every POST and answers ``status_for(n)`` to the n-th (0-based)."""

    def __init__(self, secret: bytes, status_for: Callable[[int], int] = lambda n: 200) -> None:
        self.secret = secret
        self.status_for = status_for
        self.requests: list[dict[str, Any]] = []  # {"body", "headers", "status", "valid"}
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._lock:
                    n = len(hook.requests)
                    status = hook.status_for(n)
                    sig = self.headers.get("X-Ordinance-Signature", "")
                    want = "sha256=" + hmac.new(hook.secret, body, hashlib.sha256).hexdigest()
                    hook.requests.append({"body": body, "headers": dict(self.headers), "status": status,
                                          "valid": hmac.compare_digest(sig, want)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def accepted(self) -> dict[str, dict[str, Any]]:
        """CloudEvents answered 2xx, by event id."""
        with self._lock:
            return {json.loads(r["body"])["id"]: json.loads(r["body"]) for r in self.requests if r["status"] < 300}

    def tries(self) -> dict[str, list[int]]:
        """Every status answered, per event id, in order."""
        out: dict[str, list[int]] = {}
        with self._lock:
            for r in self.requests:
                out.setdefault(json.loads(r["body"])["id"], []).append(r["status"])
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
