"""Concurrency: several stores (separate connections) and several threads per store hit one database at once.

§5.8: "many workers on many machines" share one store: a queued execution is started once, an expired lease is
taken over by exactly one recoverer, journal leaf indices stay gap-free and in commit order under concurrent
writers, a plan id + version and an execution id are registered once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from storekit import rec, row, step_batch

from ordinance.store import OutboxEvent, PlanImmutableError, WriteBatch

STORES = 2
THREADS_PER_STORE = 4


def run_workers(make_store, work: Callable[[Any, int], Any], stores: int = STORES,
                threads_per_store: int = THREADS_PER_STORE) -> list[Any]:
    """Run ``work(store, worker_no)`` on stores × threads workers started together; return their results."""
    handles = [make_store() for _ in range(stores)]
    n = stores * threads_per_store
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=20)
            results[i] = work(handles[i % stores], i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if errors:
        raise errors[0]
    return results


def test_claim_queued_gives_each_queued_execution_to_exactly_one_worker(store, make_store):
    """§5.8: N workers polling the queue at once: every queued execution is started exactly once."""
    total = 40
    for i in range(total):
        store.create_execution(row(f"q{i:02d}", created_at=i))

    def work(s, i):
        mine = []
        while (got := s.claim_queued(f"w{i}", now=10_000, lease_ms=5_000)) is not None:
            assert got.status == "running" and got.lease_owner == f"w{i}"
            mine.append(got.execution_id)
        return mine

    claimed = [eid for mine in run_workers(make_store, work) for eid in mine]
    assert Counter(claimed) == Counter(f"q{i:02d}" for i in range(total))
    assert all(r.status == "running" for r in store.list_executions(limit=100))


def test_claim_expired_never_hands_one_execution_to_two_recoverers(store, make_store):
    """§5.8 recovery: expired leases taken over concurrently: each execution by exactly one recoverer."""
    total = 30
    for i in range(total):
        store.create_execution(row(f"r{i:02d}", status="running", lease_owner="dead", lease_expires_at=100 + i))
    store.create_execution(row("alive", status="running", lease_owner="alive", lease_expires_at=99_999))

    def work(s, i):
        mine = []
        while batch := s.claim_expired(now=1_000, owner=f"rec{i}", lease_ms=60_000, limit=3):
            assert all(r.lease_owner == f"rec{i}" for r in batch)
            mine.extend(r.execution_id for r in batch)
        return mine

    results = run_workers(make_store, work)
    claimed = [eid for mine in results for eid in mine]
    assert Counter(claimed) == Counter(f"r{i:02d}" for i in range(total))
    for i, mine in enumerate(results):
        for eid in mine:
            assert store.get_execution(eid).lease_owner == f"rec{i}"
    assert store.get_execution("alive").lease_owner == "alive"


def test_concurrent_writers_get_gap_free_leaf_indices_in_commit_order(store, make_store):
    """§8: one store-wide log: concurrent write()s never leave a gap, and each batch's leaves are consecutive."""
    batches_per_worker, per_batch = 15, 3

    def work(s, i):
        eid = f"w{i}"
        s.create_execution(row(eid))
        for b in range(batches_per_worker):
            s.write(step_batch(eid, first_seq=b * per_batch, n=per_batch, size=64))
        return eid

    eids = run_workers(make_store, work)
    records = list(store.journal())
    n = len(eids) * batches_per_worker * per_batch
    assert [r.leaf_index for r in records] == list(range(n))
    for eid in eids:
        mine = [r for r in records if r.execution_id == eid]
        assert [r.seq for r in mine] == list(range(batches_per_worker * per_batch))  # commit order = chain order
        for b in range(batches_per_worker):
            leaves = [r.leaf_index for r in mine[b * per_batch:(b + 1) * per_batch]]
            assert leaves == list(range(leaves[0], leaves[0] + per_batch)), "a batch was interleaved"
        assert store.journal_tail(eid)[0] == batches_per_worker * per_batch - 1
    assert len(store.leaf_hashes()) == n


def test_outbox_claim_hands_each_event_to_one_deliverer(store, make_store):
    """§5.7: concurrent deliverers claiming at the same instant never take the same event."""
    store.create_execution(row("a"))
    store.write(WriteBatch(outbox=[OutboxEvent(f"ev{i}", "a", {"id": f"ev{i}"}) for i in range(60)]))

    def work(s, i):
        mine = []
        while got := s.outbox_claim(now=1_000, limit=4):
            mine.extend(e.event_id for _, e, _ in got)
        return mine

    claimed = [ev for mine in run_workers(make_store, work) for ev in mine]
    assert Counter(claimed) == Counter(f"ev{i}" for i in range(60))


def test_racing_plan_registrations_R_PLAN_IMMUTABLE(store, make_store):
    """§5.8 R-PLAN-IMMUTABLE under a race: one body wins; the same body is a no-op; any other body is refused."""

    def work(s, i):
        digest = f"sha256:{i % 2}"
        try:
            return ("new" if s.register_plan("p", 1, digest, {"body": i % 2}) else "same", digest)
        except PlanImmutableError as err:
            return ("refused", err.registered_digest)

    results = run_workers(make_store, work)
    assert [r[0] for r in results].count("new") == 1
    winner = next(d for kind, d in results if kind == "new")
    assert all(d == winner for _, d in results)
    assert store.get_plan("p", 1)[0] == winner


def test_racing_creates_of_one_execution_id_R_EXEC_ID_ONCE(store, make_store):
    """§5.6 R-EXEC-ID-ONCE under a race: exactly one creator writes its batch; the others get the stored row."""

    def work(s, i):
        return s.create_execution(row("same", run_id=f"run{i}"), WriteBatch(journal=[rec("same", 0)]))

    results = run_workers(make_store, work)
    assert sum(r is None for r in results) == 1
    stored = store.get_execution("same")
    assert all(r == stored for r in results if r is not None)
    assert [r.leaf_index for r in store.journal()] == [0]


def test_one_store_shared_by_many_threads(store):
    """Store methods are thread-safe on a single instance (SQLite: one locked connection; PostgreSQL: the pool)."""
    threads = 8
    store.create_execution(row("a"))
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            for b in range(10):
                store.write(WriteBatch(journal=[rec(f"t{i}", b)]))
                store.journal_size()
                store.get_execution("a")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors
    assert [r.leaf_index for r in store.journal()] == list(range(threads * 10))
