"""The versioned schema (§5.8): migrations in code, applied in order at open; newer stores are refused untouched."""

from __future__ import annotations

import pytest
from storekit import rec, row

from ordinance.store import StoreError, WriteBatch, schema
from ordinance.store.schema import Migration

LATEST = schema.latest_version()
V2 = Migration(
    LATEST + 1, "test: executions get a priority",
    sqlite=("ALTER TABLE executions ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX executions_priority ON executions (priority)"),
    postgres=("ALTER TABLE executions ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
              "CREATE INDEX executions_priority ON executions (priority)"),
)


def versions(backend) -> list[int]:
    return [r[0] for r in backend.raw_execute("SELECT version FROM schema_version ORDER BY version")]


def columns(backend, table: str) -> set[str]:
    if backend.name == "sqlite":
        return {r[1] for r in backend.raw_execute(f"PRAGMA table_info({table})")}
    return {r[0] for r in backend.raw_execute(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = current_schema() AND table_name = '{table}'")}


def test_a_new_store_is_created_at_the_latest_version(backend, store):
    assert store.schema_version() == schema.latest_version() == schema.MIGRATIONS[-1].version
    assert versions(backend) == [m.version for m in schema.MIGRATIONS]
    for table in ("plans", "executions", "results", "journal", "receipts", "outbox", "tokens", "checkpoints"):
        assert columns(backend, table), table
    assert {"leaf_index", "execution_id", "seq", "kind", "body", "entry_hash", "leaf_hash"} <= columns(backend, "journal")


def test_reopening_a_current_store_changes_nothing(backend, store):
    store.create_execution(row("a"), WriteBatch(journal=[rec("a", 0)]))
    store.close()
    again = backend.open()
    assert again.schema_version() == schema.latest_version()
    assert versions(backend) == [m.version for m in schema.MIGRATIONS]
    assert again.get_execution("a") == row("a")


def test_an_empty_version_0_store_is_brought_up_to_date(backend, monkeypatch):
    monkeypatch.setattr(schema, "MIGRATIONS", ())
    backend.open().close()
    assert versions(backend) == []
    monkeypatch.undo()
    s = backend.open()
    assert s.schema_version() == schema.latest_version()
    s.create_execution(row("a"))
    assert s.get_execution("a") == row("a")


def test_an_older_store_is_upgraded_in_order_keeping_its_data(backend, monkeypatch):
    """§5.8: opening a store written by an older Ordinance applies the missing migrations, data intact."""
    old = backend.open()
    old.create_execution(row("a"), WriteBatch(journal=[rec("a", 0), rec("a", 1)]))
    old.register_plan("p", 1, "sha256:x", {"k": "v"})
    old.close()
    assert "priority" not in columns(backend, "executions")

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (V2,))
    new = backend.open()
    assert new.schema_version() == LATEST + 1
    assert versions(backend) == [m.version for m in schema.MIGRATIONS]
    assert "priority" in columns(backend, "executions")
    assert new.get_execution("a") == row("a")
    assert [r.seq for r in new.journal("a")] == [0, 1]
    assert new.get_plan("p", 1) == ("sha256:x", {"k": "v"})
    new.write(WriteBatch(journal=[rec("a", 2)]))
    assert new.journal_size() == 3
    new.close()
    backend.open().close()  # opening again is a no-op
    assert versions(backend).count(LATEST + 1) == 1


def test_a_failed_migration_leaves_the_previous_version_intact(backend, monkeypatch):
    backend.open().close()
    broken = Migration(LATEST + 1, "test: broken", sqlite=("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL"),
                       postgres=("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (broken,))
    with pytest.raises(StoreError, match=rf"store open failed: .*migration {LATEST + 1} \(test: broken\) failed.*"
                                         rf"left at version {LATEST}"):
        backend.open()
    assert versions(backend)[-1] == LATEST
    assert "x" not in columns(backend, "extra")  # the migration's first statement was rolled back too
    monkeypatch.undo()
    backend.open().close()


def test_a_store_from_a_newer_ordinance_is_refused_untouched(backend, store):
    """§5.8: a schema version this code does not know is a clear StoreError, and nothing is changed."""
    store.create_execution(row("a"))
    store.close()
    backend.raw_execute("INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 0)")
    with pytest.raises(StoreError, match=rf"schema version 99, but this Ordinance supports versions up to {LATEST}.*newer"):
        backend.open()
    assert versions(backend)[-2:] == [LATEST, 99]
    assert backend.raw_execute("SELECT execution_id FROM executions") == [("a",)]


def test_many_processes_opening_a_new_store_at_once_migrate_it_once(backend):
    """Workers starting together on an empty database: one applies the migrations, the rest find them done."""
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def opener() -> None:
        try:
            barrier.wait(timeout=10)
            backend.open()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert versions(backend) == [m.version for m in schema.MIGRATIONS]
