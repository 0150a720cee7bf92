"""Events (CONTRACT §5.7): CloudEvents; slow, failing or absent sinks never delay or change execution."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ordinance.contract import PlanStatus
from support import ENV, make_plan, sid

PLAN = make_plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"},
                 {"action": "control.echo", "payload": {"value": 1}, "depends_on": [sid(1)]})


def test_s5_7_callback_sink_gets_cloudevents(store, workspace):
    from ordinance.engine import CallbackSink, Engine

    got = []
    e = Engine(store, workspace=str(workspace), sinks=[CallbackSink(got.append)])
    r = e.run(PLAN, environment=ENV)
    types = [ev["type"] for ev in got]
    assert types[0] == "ordinance.plan_received" and "ordinance.execution_started" in types
    assert "ordinance.step_skipped" in types and types[-1] == "ordinance.plan_execution_partial"
    ev = got[0]
    assert ev["specversion"] == "1.0" and ev["subject"] == r.execution_id and ev["source"].startswith("urn:ordinance:")


def test_s5_7_R_EVENTS_NONBLOCKING_hanging_and_raising_sinks(store, workspace):
    from ordinance.engine import CallbackSink, Engine

    async def hang(event):
        await asyncio.sleep(3600)

    def boom(event):
        raise RuntimeError("sink is down")

    baseline = Engine(store, workspace=str(workspace)).run(PLAN, environment=ENV)
    e = Engine(store, workspace=str(workspace), sinks=[CallbackSink(hang, "hang"), CallbackSink(boom, "boom")])
    t0 = time.monotonic()
    r = e.run(PLAN, environment=ENV)
    assert time.monotonic() - t0 < 10  # the plan ends on time (close gives sinks a bounded grace period)
    assert r.status is baseline.status is PlanStatus.PARTIAL
    assert [s.status for s in r.step_results] == [s.status for s in baseline.step_results]


def test_s5_7_jsonl_sink(store, workspace, tmp_path):
    from ordinance.engine import Engine, JsonlSink

    path = tmp_path / "events.jsonl"
    Engine(store, workspace=str(workspace), sinks=[JsonlSink(path)]).run(PLAN, environment=ENV)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines and all(x["type"].startswith("ordinance.") for x in lines)


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.headers.get("X-Ordinance-Signature"), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_s5_7_webhook_is_hmac_signed(store, workspace):
    from ordinance.engine import Engine, WebhookSink

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Hook.received = []
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
        Engine(store, workspace=str(workspace), sinks=[WebhookSink(url, "s3cret")]).run(PLAN, environment=ENV)
    finally:
        srv.shutdown()
    assert _Hook.received
    for sig, body in _Hook.received:
        assert sig == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert json.loads(body)["specversion"] == "1.0"


def test_s5_7_webhook_that_hangs_does_not_delay_the_plan(store, workspace):
    import socket

    from ordinance.engine import Engine, WebhookSink

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{lsock.getsockname()[1]}/"
        t0 = time.monotonic()
        r = Engine(store, workspace=str(workspace), sinks=[WebhookSink(url, "k", timeout_s=30)]).run(
            PLAN, environment=ENV)
        assert time.monotonic() - t0 < 10
        assert r.status is PlanStatus.PARTIAL
    finally:
        lsock.close()


def test_s5_7_outbox_events_are_durable_with_the_journal(store, workspace):
    from ordinance.engine import Engine

    r = Engine(store, workspace=str(workspace), outbox=True).run(PLAN, environment=ENV)
    claimed = store.outbox_claim(int(time.time() * 1000) + 1, limit=1000)
    types = [ev.event["type"] for _, ev, _ in claimed]
    assert "ordinance.plan_execution_partial" in types
    assert all(ev.execution_id == r.execution_id for _, ev, _ in claimed)


def test_s5_7_R_EVENTS_NONBLOCKING_slow_synchronous_sink(store, workspace):
    """A plain-function sink that sleeps runs off the event loop; the run neither hangs nor slows."""
    from ordinance.engine import CallbackSink, Engine

    e = Engine(store, workspace=str(workspace), sinks=[CallbackSink(lambda ev: time.sleep(0.25))])
    t0 = time.monotonic()
    r = e.run(make_plan({"action": "control.noop"}, {"action": "control.noop"}, {"action": "control.noop"}),
              environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    assert time.monotonic() - t0 < 10
