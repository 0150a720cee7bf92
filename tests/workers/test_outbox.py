"""Outbox delivery (CONTRACT §5.7): at-least-once to a real HTTP endpoint, HMAC-signed, with backoff."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from support import ENV, make_plan, sid
from workerkit import Hook, Workers

from ordinance.engine import Engine
from ordinance.engine.events import JsonlSink, WebhookSink
from ordinance.engine.outbox import DEAD_AT, OutboxDeliverer, backoff_ms

SECRET = b"s3cret-key"


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.cleanup()


def plan(n: int = 2, pid: int = 401) -> dict:
    steps = [{"action": "control.noop"}]
    for i in range(2, n + 1):
        steps.append({"action": "control.echo", "payload": {"value": i}, "depends_on": [sid(i - 1)]})
    return make_plan(*steps, id=sid(pid))


def run_with_outbox(store, workspace, n_steps: int = 2) -> tuple[str, int]:
    r = Engine(store, workspace=str(workspace), outbox=True).run(plan(n_steps), environment=ENV)
    return r.execution_id, store.outbox_pending()


def test_s5_7_backoff_schedule_doubles_and_is_capped():
    assert [backoff_ms(n) for n in range(1, 11)] == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000,
                                                     256000, 300000]
    assert backoff_ms(500) == 300_000
    assert backoff_ms(3, base_ms=50, max_ms=120) == 120


def test_s5_7_worker_delivers_the_outbox_to_a_signed_webhook_and_jsonl(backend, workers, workspace, tmp_path):
    hook = Hook(SECRET)
    try:
        eid = Engine(backend.store, recover_on_start=False).submit(plan(3, 402), environment=ENV)
        jsonl = tmp_path / "events.jsonl"
        w = workers.start(backend.url, "--once", "--outbox-webhook", hook.url, "--outbox-jsonl", str(jsonl),
                          workspace=workspace, env={"ORDINANCE_WEBHOOK_SECRET": SECRET.decode()})
        assert w.wait(60) == 0, w.text()
        assert backend.store.get_result(eid)["status"] == "success"
        got = hook.accepted()
        types = [e["type"] for e in got.values()]
        assert "ordinance.plan_execution_success" in types and "ordinance.plan_received" in types
        assert types.count("ordinance.step_succeeded") == 3
        assert all(r["valid"] for r in hook.requests)  # X-Ordinance-Signature: sha256=HMAC(secret, exact body)
        assert all(r["headers"]["Content-Type"] == "application/cloudevents+json" for r in hook.requests)
        assert all(e["subject"] == eid and e["specversion"] == "1.0" for e in got.values())
        lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
        assert {e["id"] for e in lines} == set(got)
        assert backend.store.outbox_pending() == 0
    finally:
        hook.close()


def test_s5_7_failing_endpoint_is_retried_with_backoff_until_delivered(backend, workspace):
    # The endpoint answers 500 to the first 8 requests, then 200.
    hook = Hook(SECRET, status_for=lambda n: 500 if n < 8 else 200)
    try:
        eid, pending = run_with_outbox(backend.store, workspace, 3)
        assert pending >= 8
        d = OutboxDeliverer(backend.store, [WebhookSink(hook.url, SECRET)], base_delay_ms=40, max_delay_ms=400,
                            poll_ms=20, jitter=0)

        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(d.run(stop))
            for _ in range(1000):
                if backend.store.outbox_pending() == 0:
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await task
            await d.aclose()

        asyncio.run(main())
        assert backend.store.outbox_pending() == 0  # nothing lost
        tries = hook.tries()
        assert len(tries) == pending  # every event reached the endpoint …
        assert set(hook.accepted()) == set(tries)  # … and was finally accepted
        assert any(s[:1] == [500] and s[-1] == 200 for s in tries.values())  # retried after a failure
        assert d.totals.retried >= 8 and d.totals.delivered == pending and d.totals.dead == 0
        assert all(r["valid"] for r in hook.requests)
        assert all(json.loads(r["body"])["subject"] == eid for r in hook.requests)
    finally:
        hook.close()


class RecordingStore:
    """Wraps a store and records the outbox bookkeeping calls."""

    def __init__(self, inner):
        self.inner = inner
        self.retries: list[tuple[int, int, str]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def outbox_retry(self, outbox_id, next_at, error):
        self.retries.append((outbox_id, next_at, error))
        return self.inner.outbox_retry(outbox_id, next_at, error)


def test_s5_7_retry_delays_grow_and_an_event_is_dead_after_max_attempts(sqlite_backend, workspace, monkeypatch):
    import ordinance.engine.outbox as outbox_mod

    st = sqlite_backend.store
    hook = Hook(SECRET, status_for=lambda n: 500)
    clock = [1_900_000_000_000]
    monkeypatch.setattr(outbox_mod, "now_ms", lambda: clock[0])
    try:
        run_with_outbox(st, workspace, 1)
        rec = RecordingStore(st)
        d = OutboxDeliverer(rec, [WebhookSink(hook.url, SECRET)], base_delay_ms=1000, max_delay_ms=3000,
                            max_attempts=4, jitter=0)

        async def passes() -> list:
            out = []
            for _ in range(6):
                out.append(await d.deliver_once())
                clock[0] += 10 * 60 * 1000  # ten minutes later: everything not dead is due again
            await d.aclose()
            return out

        stats = asyncio.run(passes())
        n = stats[0].claimed
        assert n >= 3
        assert [s.retried for s in stats[:3]] == [n, n, n] and stats[3].dead == n
        assert sum(s.claimed for s in stats[4:]) == 0  # dead events are not taken again
        by_id: dict[int, list[tuple[int, str]]] = {}
        t = 1_900_000_000_000
        for k in range(4):
            for oid, next_at, err in rec.retries[k * n:(k + 1) * n]:
                by_id.setdefault(oid, []).append((next_at - (t + k * 600_000), err))
        for delays in by_id.values():
            assert [x for x, _ in delays[:3]] == [1000, 2000, 3000]  # 1 s, 2 s, then capped
            assert delays[3][0] > 10 ** 15  # dead: next_at pushed out of reach
            assert "500" in delays[0][1] and "dead after 4 attempts" in delays[3][1]
        assert len(hook.requests) == 4 * n
    finally:
        hook.close()
    db = sqlite3.connect(sqlite_backend.url)
    rows = db.execute("SELECT attempts, next_at, delivered_at, last_error FROM outbox").fetchall()
    db.close()
    assert rows and all(a == 4 and na == DEAD_AT and da is None and "dead after 4" in le for a, na, da, le in rows)


def test_s5_7_a_sink_that_hangs_counts_as_a_failure(sqlite_backend, workspace, tmp_path):
    st = sqlite_backend.store
    run_with_outbox(st, workspace, 1)
    n = st.outbox_pending()

    class Hang:
        name = "hang"

        async def send(self, event):
            await asyncio.sleep(30)

    jsonl = tmp_path / "e.jsonl"
    d = OutboxDeliverer(st, [JsonlSink(jsonl), Hang()], send_timeout_s=0.05, jitter=0)
    stats = asyncio.run(d.deliver_once())
    assert stats.retried == n and stats.delivered == 0
    assert "no answer" in stats.errors[-1]
    assert st.outbox_pending() == n
    # at-least-once: the healthy sink already has them; it will get them again on the retry
    assert len(jsonl.read_text().splitlines()) == n


def test_s5_7_outbox_deliverer_needs_a_sink(sqlite_backend):
    with pytest.raises(ValueError):
        OutboxDeliverer(sqlite_backend.store, [])
