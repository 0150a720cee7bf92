"""The embedded default store: one SQLite file in WAL mode (§5.8).

One connection per store, guarded by a lock (``check_same_thread=False``), in autocommit mode
(``isolation_level=None``): every write is an explicit ``BEGIN IMMEDIATE`` … ``COMMIT``, so each :meth:`write`
is exactly one transaction and takes the database's write lock up front (no deferred-upgrade deadlocks between
processes). A busy timeout lets several processes share the file. Reads are single statements, each its own
consistent snapshot.

Durability: ``"full"`` (default) is ``synchronous=FULL`` — a returned ``write()`` survives power loss;
``"normal"`` survives a crash of the process but may lose the last commits on power loss; ``"off"`` leaves it to
the OS (tests and throwaway runs only).

The statements and steps shared with PostgreSQL live in :mod:`ordinance.store.sqlbase`; this module keeps the
connection, its transactions, the migrations, journal leaf assignment and the claims.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import schema
from .base import ExecutionRow, OutboxEvent, StoreError
from .schema import EXECUTION_SELECT, OUTBOX_CLAIM_MS, execution_from_row, now_ms
from .sqlbase import Connection, SQLStore, Statements

__all__ = ["SQLiteStore", "parse_sqlite_url"]

_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
_WRAPPED = (sqlite3.Error, OverflowError, ValueError, MemoryError)

def _load(value: Any) -> Any:
    """A stored JSON column → the document: orjson (fast), or the standard library for what orjson refuses
    (integers beyond 64 bits)."""
    try:
        return _orjson_loads(value)
    except ValueError:
        return schema._json.loads(value)


try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson_loads = schema._json.loads


def parse_sqlite_url(path_or_url: str | os.PathLike[str]) -> str:
    """``sqlite:///abs/path`` → ``/abs/path``; ``sqlite:rel/path`` → ``rel/path``; a plain path is itself."""
    s = os.fspath(path_or_url)
    if s.startswith("sqlite:"):
        s = s[len("sqlite:"):]
        s = s.removeprefix("//")
        s = s.split("?", 1)[0]
    if not s:
        raise StoreError("store open failed: empty SQLite path")
    return s


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL (persistent, so usually already done). The switch needs an exclusive lock and
    SQLite does not run the busy handler for it, so openers racing on a new file retry here."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (5, 6) or "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class SQLiteStore(SQLStore):
    """SQLite-backed :class:`~ordinance.store.base.Store`. ``path_or_url``: a path, ``sqlite:///abs`` or ``sqlite:rel``."""

    _sql = Statements("?", receipt_order="rowid", true="1")
    _decode_json = staticmethod(_load)

    def __init__(
        self, path_or_url: str | os.PathLike[str], *, durability: str = "full", busy_timeout_ms: int = 30_000,
        create: bool = True,
    ) -> None:
        """``create=False``: refuse a file that does not exist yet instead of creating it (commands that only read)."""
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be one of {', '.join(_SYNCHRONOUS)}, not {durability!r}")
        path = parse_sqlite_url(path_or_url)
        self._memory = path == ":memory:"
        if not self._memory:
            path = os.path.abspath(path)
            if not create and not os.path.exists(path):
                raise StoreError(f"store open failed: {path}: no store there (nothing has run with it yet)")
        self.path = path
        self.url = path if self._memory else "sqlite://" + path
        self.durability = durability
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            if not self._memory:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False,
                cached_statements=256,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"store open failed: {path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not self._memory:
                _enable_wal(conn, busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[durability]}")
            self._conn = conn
            self._migrate()
        except BaseException as exc:
            conn.close()
            self._conn = None
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, _WRAPPED):
                raise StoreError(f"store open failed: {path}: {exc}") from exc
            raise

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        conn = self._conn
        assert conn is not None
        if self._current_version(conn) == schema.latest_version() and schema.latest_version() > 0:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(schema.SCHEMA_VERSION_DDL)
            current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            for m in schema.pending_migrations(current, self.path):
                try:
                    for stmt in m.sqlite:
                        conn.execute(stmt)
                except sqlite3.Error as exc:
                    raise StoreError(
                        f"store open failed: {self.path}: migration {m.version} ({m.description}) failed: {exc}; "
                        f"the store is left at version {current or 0}"
                    ) from exc
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.description, now_ms()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _current_version(conn: sqlite3.Connection) -> int | None:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return None
        return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    def _connection(self, op: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {op} failed: the store is closed")
        return self._conn

    @contextmanager
    def _tx(self, op: str) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: BEGIN IMMEDIATE … COMMIT; any failure rolls back everything."""
        with self._lock:
            conn = self._connection(op)
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(exc, StoreError):
                    raise
                if isinstance(exc, _WRAPPED):
                    raise StoreError(f"store {op} failed: {exc}") from exc
                raise

    @contextmanager
    def _reading(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection(op)
            try:
                yield conn
            except _WRAPPED as exc:
                raise StoreError(f"store {op} failed: {exc}") from exc

    def _execute(self, op: str, statement: str, params: Any) -> int:
        with self._tx(op) as conn:
            return conn.execute(statement, params).rowcount

    @staticmethod
    def _assign_leaves(cur: Connection, n: int, op: str) -> int:
        # BEGIN IMMEDIATE holds the database's write lock until COMMIT: no other writer appends meanwhile.
        return cur.execute("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM journal").fetchone()[0]

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass

    @property
    def key_dir(self) -> str | None:
        return None if self._memory else os.path.dirname(self.path)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, durability={self.durability!r})"

    # -- claims: a cheap unlocked probe, then one write transaction only when there is work ------------------
    def claim_expired(self, now: int, owner: str, lease_ms: int, limit: int = 100) -> list[ExecutionRow]:
        due = "FROM executions WHERE status = 'running' AND lease_expires_at < ?"
        if self._one("claim_expired", f"SELECT 1 {due} LIMIT 1", (now,)) is None:
            return []  # the common case costs no write lock
        expires = now + lease_ms
        with self._tx("claim_expired") as conn:
            rows = conn.execute(
                f"SELECT {EXECUTION_SELECT} {due} ORDER BY lease_expires_at, execution_id LIMIT ?", (now, limit)
            ).fetchall()
            conn.executemany(
                "UPDATE executions SET lease_owner = ?, lease_expires_at = ? WHERE execution_id = ?",
                [(owner, expires, r[0]) for r in rows],
            )
        claimed = []
        for r in rows:
            row = execution_from_row(r, _load)
            row.lease_owner, row.lease_expires_at = owner, expires
            claimed.append(row)
        return claimed

    def claim_queued(self, owner: str, now: int, lease_ms: int) -> ExecutionRow | None:
        oldest = "FROM executions WHERE status = 'queued' ORDER BY created_at, execution_id LIMIT 1"
        if self._one("claim_queued", f"SELECT 1 {oldest}") is None:
            return None
        expires = now + lease_ms
        with self._tx("claim_queued") as conn:
            r = conn.execute(f"SELECT {EXECUTION_SELECT} {oldest}").fetchone()
            if r is None:
                return None
            conn.execute(
                "UPDATE executions SET status = 'running', lease_owner = ?, lease_expires_at = ?, updated_at = ? "
                "WHERE execution_id = ?",
                (owner, expires, now, r[0]),
            )
        row = execution_from_row(r, _load)
        row.status, row.lease_owner, row.lease_expires_at, row.updated_at = "running", owner, expires, now
        return row

    def outbox_claim(self, now: int, limit: int = 100) -> list[tuple[int, OutboxEvent, int]]:
        due = "FROM outbox WHERE delivered_at IS NULL AND next_at <= ?"
        if self._one("outbox_claim", f"SELECT 1 {due} LIMIT 1", (now,)) is None:
            return []
        with self._tx("outbox_claim") as conn:
            rows = conn.execute(
                f"SELECT id, event_id, execution_id, event, attempts {due} ORDER BY next_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany("UPDATE outbox SET next_at = ? WHERE id = ?",
                             [(now + OUTBOX_CLAIM_MS, r[0]) for r in rows])
        return [(r[0], OutboxEvent(r[1], r[2], _load(r[3])), r[4]) for r in rows]
