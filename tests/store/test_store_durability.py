"""Faults: a full disk, a writer killed mid-stream, a lost connection, an unreachable server (§5.8).

What must hold: a failed write is a StoreError naming the operation and leaves nothing half-written; everything
committed before stays intact and readable; after a crash the store shows a consistent prefix (journal leaf
indices contiguous from 0, every batch entirely present or entirely absent).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest
from storekit import leaf, rec, row, step_batch

from ordinance.store import StoreError, WriteBatch
from ordinance.store.sqlite import SQLiteStore

SRC = str(Path(__file__).resolve().parents[2] / "src")


def assert_consistent_prefix(store, batch_records: int = 3) -> dict[str, int]:
    """Journal leaves contiguous from 0; each writer's batches form a prefix and each batch is whole.

    Returns, per writer, how many batches it committed.
    """
    records = list(store.journal())
    assert [r.leaf_index for r in records] == list(range(len(records))), "journal leaf indices have a gap"
    assert store.journal_size() == len(records)
    hashes = store.leaf_hashes()
    assert hashes == [leaf(r.body) for r in records]
    per_execution: dict[str, list] = defaultdict(list)
    for r in records:
        per_execution[r.execution_id].append(r)
    committed: dict[str, int] = defaultdict(int)
    for eid, recs in per_execution.items():
        assert [r.seq for r in recs] == list(range(batch_records)), f"batch {eid} is torn"
        assert [r.leaf_index for r in recs] == list(range(recs[0].leaf_index, recs[0].leaf_index + batch_records))
        assert [d["operation_id"] for d in store.receipts(eid)] == [eid], f"batch {eid} lost its receipt"
        writer, n = eid.rsplit("-", 1)
        committed[writer] = max(committed[writer], int(n) + 1)
    for writer, n in committed.items():
        for i in range(n):
            assert f"{writer}-{i}" in per_execution, f"{writer}-{i} missing below the committed prefix"
        assert store.receipts(f"{writer}-{n}") == [], "the uncommitted batch left a receipt"
        assert store.find_receipt(f"key-{writer}-{n}-0") is None
    assert store.outbox_pending() == len(per_execution)
    return dict(committed)


# -- disk full (SQLite) --------------------------------------------------------------------------------------------
def test_sqlite_disk_full_is_a_store_error_and_committed_data_survives(tmp_path):
    """§5.8: SQLITE_FULL surfaces as "store write failed: database or disk is full"; the failed batch is absent,
    everything committed before is intact (also for a fresh connection), and writing resumes once space returns."""
    path = tmp_path / "full.db"
    store = SQLiteStore(path)
    for i in range(5):
        store.write(_writer_batch(f"w-{i}"))
    before = list(store.journal())

    conn = store._conn  # the store's own connection: cap the file so it cannot grow
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 3}")
    with pytest.raises(StoreError, match=r"^store write failed: database or disk is full"):
        for i in range(5, 200):
            store.write(_writer_batch(f"w-{i}", size=4000))
    # reads still work on the same store; the prefix is consistent and the early batches are byte-identical
    committed = assert_consistent_prefix(store)
    assert list(store.journal())[: len(before)] == before
    other = SQLiteStore(path)
    assert assert_consistent_prefix(other) == committed
    assert other._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    other.close()
    # space returns → the next write lands right after the last committed leaf, no gap
    conn.execute("PRAGMA max_page_count = 1073741823")
    n = committed["w"]
    store.write(_writer_batch(f"w-{n}"))
    assert_consistent_prefix(store)
    store.close()


def _writer_batch(eid: str, size: int = 400) -> WriteBatch:
    b = step_batch(eid, n=3, size=size, outbox=True)
    b.receipts[0].update(operation_id=eid, idempotency_key=f"key-{eid}-0")
    return b


# -- crash consistency (both backends) ------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.environ["ORDINANCE_SRC"])
    from ordinance.store import open_store, WriteBatch, JournalAppend, OutboxEvent
    store = open_store(sys.argv[1])
    name = sys.argv[2]
    i = 0
    while True:
        eid = f"{name}-{i}"
        bodies = [os.urandom(400) for _ in range(3)]
        store.write(WriteBatch(
            journal=[JournalAppend(eid, s, "step.completed", bodies[s], f"h{s}") for s in range(3)],
            receipts=[{"operation_id": eid, "execution_id": eid, "step_id": "s", "attempt": 1,
                       "idempotency_key": f"key-{eid}-0", "status": "succeeded"}],
            outbox=[OutboxEvent(eid, eid, {"id": eid})],
        ))
        i += 1
        if i == 25:
            print("ready", flush=True)
""")


def test_writers_killed_with_sigkill_leave_a_consistent_prefix(backend, store):
    """§8 / §5.8: two writer processes appending in a loop are SIGKILLed mid-stream; reopening shows journal
    leaf indices contiguous from 0 and every batch (3 records + receipt + outbox event) whole or absent."""
    env = {**os.environ, "ORDINANCE_SRC": SRC}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, backend.url, name], stdout=subprocess.PIPE, env=env)
             for name in ("alpha", "beta")]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == b"ready", "a writer did not start"
        time.sleep(0.3)  # both writing flat out
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=10)
            p.stdout.close()
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    store.close()
    reopened = backend.open()
    committed = assert_consistent_prefix(reopened)
    assert set(committed) == {"alpha", "beta"} and min(committed.values()) >= 25
    if backend.name == "sqlite":
        assert reopened._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the log continues without a gap
    reopened.create_execution(row("after"), WriteBatch(journal=[rec("after", 0)]))
    assert [r.leaf_index for r in reopened.journal("after")] == [sum(committed.values()) * 3]


# -- SQLite specifics -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("durability, level", [("full", 2), ("normal", 1), ("off", 0)])
def test_sqlite_wal_mode_and_synchronous_level(tmp_path, durability, level):
    s = SQLiteStore(tmp_path / "d.db", durability=durability)
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == level
    assert s._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    s.close()
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "d.db", durability="fast")


def test_sqlite_accepts_urls_and_paths_and_creates_the_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    forms = {
        "sqlite://" + str(tmp_path / "abs" / "a.db"): tmp_path / "abs" / "a.db",
        "sqlite:rel/b.db": tmp_path / "rel" / "b.db",
        str(tmp_path / "plain" / "c.db"): tmp_path / "plain" / "c.db",
        ".ordinance/ordinance.db": tmp_path / ".ordinance" / "ordinance.db",
    }
    for given, expected in forms.items():
        s = SQLiteStore(given)
        assert Path(s.path) == expected and expected.exists()
        assert s.key_dir == str(expected.parent)
        assert SQLiteStore(s.url).path == s.path  # url round-trips
        s.close()


def test_sqlite_store_in_memory(tmp_path):
    s = SQLiteStore(":memory:")
    s.create_execution(row("a"), WriteBatch(journal=[rec("a", 0)]))
    assert s.journal_size() == 1 and s.key_dir is None
    s.close()


def test_sqlite_file_that_is_not_a_database_is_a_store_error(tmp_path):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="store open failed: .*junk.db: file is not a database"):
        SQLiteStore(bad)


def test_sqlite_unwritable_location_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="store open failed"):
        SQLiteStore(blocker / "sub" / "o.db")


def test_sqlite_busy_writer_in_another_connection_waits_instead_of_failing(tmp_path):
    """Several processes share the file: a writer blocked by another's transaction waits (busy timeout)."""
    path = tmp_path / "busy.db"
    s = SQLiteStore(path)
    s.create_execution(row("a"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    import threading

    done = threading.Event()
    t = threading.Thread(target=lambda: (s.write(WriteBatch(journal=[rec("a", 0)])), done.set()))
    t.start()
    time.sleep(0.3)
    assert not done.is_set()
    other.execute("COMMIT")
    t.join(timeout=10)
    assert done.is_set() and s.journal_size() == 1
    other.close()
    s.close()


# -- PostgreSQL specifics -------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_unreachable_server_is_a_store_error():
    from ordinance.store.postgres import PostgresStore

    with pytest.raises(StoreError, match="store open failed: cannot connect to PostgreSQL"):
        PostgresStore("postgresql://127.0.0.1:1/test", connect_timeout=2)


@pytest.mark.postgres
def test_postgres_lost_connection_is_a_store_error_then_the_store_reconnects():
    from backends import PostgresBackend, require_pg

    backend = PostgresBackend(require_pg())
    try:
        s = backend.open(pool_size=1)
        s.create_execution(row("a"))
        pid = s._one("pid", "SELECT pg_backend_pid()")[0]
        backend.raw_execute(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(StoreError, match="store write failed"):
            s.write(WriteBatch(journal=[rec("a", 0)]))
        s.write(WriteBatch(journal=[rec("a", 0)]))  # a fresh connection from the pool
        assert [r.leaf_index for r in s.journal()] == [0]
    finally:
        backend.cleanup()


@pytest.mark.postgres
def test_postgres_schemas_isolate_stores():
    from backends import PostgresBackend, require_pg

    a, b = PostgresBackend(require_pg()), PostgresBackend(require_pg())
    try:
        sa, sb = a.open(), b.open()
        sa.create_execution(row("a"), WriteBatch(journal=[rec("a", 0)]))
        assert sb.get_execution("a") is None and sb.journal_size() == 0
        assert "search_path" in sa.url
    finally:
        a.cleanup()
        b.cleanup()


@pytest.mark.postgres
def test_postgres_rejects_bad_schema_names():
    from ordinance.store.postgres import PostgresStore

    with pytest.raises(ValueError):
        PostgresStore("postgresql://127.0.0.1:5432/test", schema='x"; DROP SCHEMA public; --')


def test_s5_8_create_false_refuses_a_missing_sqlite_file_and_opens_an_existing_one(tmp_path):
    from ordinance.store import StoreError, open_store
    from ordinance.store.sqlite import SQLiteStore

    path = tmp_path / "sub" / "s.db"
    with pytest.raises(StoreError, match="no store there"):
        open_store(str(path), create=False)
    assert not (tmp_path / "sub").exists()  # not even the directory
    SQLiteStore(path).close()  # created by a command that writes
    with open_store(f"sqlite://{path}", create=False) as st:
        assert st.journal_size() == 0
