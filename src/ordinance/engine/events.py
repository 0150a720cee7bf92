"""Events (CONTRACT §5.7): CloudEvents 1.0, delivered best-effort and never blocking execution.

The engine hands events to an :class:`EventBus`; a background task fans them out to
sinks. A slow, failing or absent sink never delays a step and never changes a status
(R-EVENTS-NONBLOCKING). The durable outbox is different: its events are written in the
same store transaction as the journal records they describe, and a worker delivers
them at-least-once (:mod:`ordinance.engine.outbox`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import threading
from typing import Any, Callable, Protocol

from ..contract.canonical import canonical_bytes, digest

__all__ = [
    "EVENT_NAMES", "make_event", "Sink", "CallbackSink", "JsonlSink", "WebhookSink", "EventBus", "sign_body",
    "SIGNATURE_HEADER",
]

log = logging.getLogger("ordinance.events")

EVENT_NAMES = frozenset(
    {
        "plan_received", "execution_started", "step_started", "step_succeeded", "step_failed", "step_retry_scheduled",
        "step_skipped", "step_timed_out", "step_compensated", "plan_execution_success", "plan_execution_partial",
        "plan_execution_failure",
    }
)

SIGNATURE_HEADER = "X-Ordinance-Signature"


def make_event(name: str, *, source: str, execution_id: str, seq: int, time_ms: int, data: dict[str, Any]) -> dict:
    """A structured-mode CloudEvent. Its id is derived from (execution, seq, name): no hidden randomness."""
    if name not in EVENT_NAMES:
        raise ValueError(f"unknown event name {name!r}")
    import datetime as _dt

    t = _dt.datetime.fromtimestamp(time_ms / 1000, tz=_dt.timezone.utc)
    return {
        "specversion": "1.0",
        "id": digest({"execution_id": execution_id, "seq": seq, "name": name})[7:39],
        "source": source,
        "type": f"ordinance.{name}",
        "subject": execution_id,
        "time": t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }


def sign_body(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, body)>``, the webhook signature header value."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Sink(Protocol):
    name: str

    async def send(self, event: dict[str, Any]) -> None: ...


class CallbackSink:
    """Calls a function (sync or async) in-process with each event."""

    def __init__(self, func: Callable[[dict[str, Any]], Any], name: str = "callback") -> None:
        self.func, self.name = func, name

    async def send(self, event: dict[str, Any]) -> None:
        if asyncio.iscoroutinefunction(self.func):
            await self.func(event)
            return
        # A plain function runs in a thread: however slow it is, it never holds up the event loop.
        res = await asyncio.to_thread(self.func, event)
        if asyncio.iscoroutine(res):
            await res


class JsonlSink:
    """Appends each event as one line of JSON to a file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = f"jsonl:{self.path}"
        self._lock = threading.Lock()

    async def send(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)


class WebhookSink:
    """POSTs each event to a URL, signed with HMAC-SHA256 over the exact body bytes."""

    def __init__(self, url: str, secret: bytes | str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.timeout_s = timeout_s
        self.name = f"webhook:{url}"
        self._client = None

    async def send(self, event: dict[str, Any]) -> None:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        body = canonical_bytes(event)
        resp = await self._client.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/cloudevents+json", SIGNATURE_HEADER: sign_body(self.secret, body)},
        )
        if resp.status_code >= 300:
            raise RuntimeError(f"webhook answered {resp.status_code}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class EventBus:
    """Fans events out to sinks from a background task; emit() never waits.

    Each sink gets at most ``sink_timeout_s`` per event; errors are logged and counted,
    never raised. ``close()`` gives pending deliveries a short grace period, then drops them.
    """

    def __init__(self, sinks: list[Any] | None = None, *, sink_timeout_s: float = 2.0, max_queue: int = 10_000) -> None:
        self.sinks = list(sinks or [])
        self.sink_timeout_s = sink_timeout_s
        self.max_queue = max_queue
        self.delivered = 0
        self.failures = 0
        self.dropped = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    @property
    def active(self) -> bool:
        return bool(self.sinks)

    def emit(self, event: dict[str, Any]) -> None:
        if not self.sinks:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._pump(), name="ordinance-events")
        if self._queue.qsize() >= self.max_queue:
            self.dropped += 1
            return
        self._queue.put_nowait(event)

    async def _pump(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            for sink in self.sinks:
                # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as the
                # sink finishes, which would leave close() waiting forever.
                task = asyncio.ensure_future(sink.send(event))
                try:
                    done, _ = await asyncio.wait({task}, timeout=self.sink_timeout_s)
                except asyncio.CancelledError:
                    task.cancel()
                    raise
                if not done:
                    task.cancel()
                    task.add_done_callback(_consume)
                    self.failures += 1
                    log.warning("event sink %s timed out for %s", getattr(sink, "name", sink), event.get("type"))
                elif task.exception() is not None:
                    self.failures += 1
                    log.warning("event sink %s failed for %s: %s", getattr(sink, "name", sink), event.get("type"),
                                task.exception())
                else:
                    self.delivered += 1
            self._queue.task_done()

    async def drain(self, timeout_s: float = 1.0) -> None:
        """Wait up to ``timeout_s`` for queued events to be delivered."""
        if self._queue is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def close(self, grace_s: float = 1.0) -> None:
        await self.drain(grace_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)  # bounded: a closing run never waits on a sink
            self._task.add_done_callback(_consume)
            self._task = None
            self._queue = None
        for sink in self.sinks:
            closer = getattr(sink, "aclose", None)
            if closer is not None:
                try:
                    await asyncio.wait_for(closer(), 1.0)
                except BaseException:  # noqa: BLE001
                    pass


def _consume(task: "asyncio.Future[Any]") -> None:
    """Retrieve an abandoned task's outcome so it is never reported as unhandled."""
    if not task.cancelled():
        task.exception()
