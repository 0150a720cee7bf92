"""The embedded default store: one SQLite file in WAL mode (§5.8).

One connection per store, guarded by a lock (``check_same_thread=False``), in autocommit mode
(``isolation_level=None``): every write is an explicit ``BEGIN IMMEDIATE`` … ``COMMIT``, so each :meth:`write`
is exactly one transaction and takes the database's write lock up front (no deferred-upgrade deadlocks between
processes). A busy timeout lets several processes share the file. Reads are single statements, each its own
consistent snapshot.

Durability: ``"full"`` (default) is ``synchronous=FULL`` — a returned ``write()`` survives power loss;
``"normal"`` survives a crash of the process but may lose the last commits on power loss; ``"off"`` leaves it to
the OS (tests and throwaway runs only).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from . import schema
from .base import (
    LeaseLostError,
    CheckpointRow,
    ExecutionRow,
    OutboxEvent,
    PlanImmutableError,
    Store,
    StoredJournalRecord,
    StoreError,
    TokenRow,
    WriteBatch,
)
from .schema import (
    EXECUTION_SELECT,
    OUTBOX_CLAIM_MS,
    TOKEN_SELECT,
    PreparedBatch,
    dumps,
    execution_from_row,
    execution_params,
    now_ms,
    token_from_row,
    token_params,
)

__all__ = ["SQLiteStore", "parse_sqlite_url"]

_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
_WRAPPED = (sqlite3.Error, OverflowError, ValueError, MemoryError)

_load = schema._json.loads

_INSERT_EXECUTION = (
    f"INSERT INTO executions ({EXECUTION_SELECT}) VALUES ({', '.join('?' * len(schema.EXECUTION_COLUMNS))}) "
    "ON CONFLICT (execution_id) DO NOTHING"
)
_UPDATE_EXECUTION = (
    "UPDATE executions SET status = ?, updated_at = ?, "
    "lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, "
    "lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END "
    "WHERE execution_id = ?"
)
_INSERT_JOURNAL = (
    "INSERT INTO journal (leaf_index, execution_id, seq, kind, body, entry_hash, leaf_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_RECEIPT = (
    "INSERT INTO receipts (operation_id, execution_id, step_id, attempt, idempotency_key, status, document) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (operation_id) DO UPDATE SET "
    "execution_id = excluded.execution_id, step_id = excluded.step_id, attempt = excluded.attempt, "
    "idempotency_key = excluded.idempotency_key, status = excluded.status, document = excluded.document"
)
_INSERT_RESULT = "INSERT INTO results (execution_id, document, digest) VALUES (?, ?, ?)"
_INSERT_OUTBOX = "INSERT INTO outbox (event_id, execution_id, event) VALUES (?, ?, ?)"


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


class SQLiteStore(Store):
    """SQLite-backed :class:`~ordinance.store.base.Store`. ``path_or_url``: a path, ``sqlite:///abs`` or ``sqlite:rel``."""

    #: Rows fetched per round when streaming the journal.
    journal_chunk = 2000
    #: Leaf hashes fetched per round.
    hash_chunk = 50_000

    def __init__(
        self, path_or_url: str | os.PathLike[str], *, durability: str = "full", busy_timeout_ms: int = 30_000,
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be one of {', '.join(_SYNCHRONOUS)}, not {durability!r}")
        path = parse_sqlite_url(path_or_url)
        self._memory = path == ":memory:"
        if not self._memory:
            path = os.path.abspath(path)
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

    def schema_version(self) -> int:
        with self._reading("schema_version") as conn:
            return self._current_version(conn) or 0

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

    def _all(self, op: str, sql: str, params: Any = ()) -> list[Any]:
        with self._reading(op) as conn:
            return conn.execute(sql, params).fetchall()

    def _one(self, op: str, sql: str, params: Any = ()) -> Any:
        with self._reading(op) as conn:
            return conn.execute(sql, params).fetchone()

    @staticmethod
    def _apply(conn: sqlite3.Connection, p: PreparedBatch, op: str) -> None:
        if p.lease is not None:
            r = conn.execute("SELECT status, lease_owner FROM executions WHERE execution_id = ?", (p.lease[0],)).fetchone()
            if r is None or r[0] != "running" or r[1] != p.lease[1]:
                raise LeaseLostError(p.lease[0], p.lease[1], r[1] if r else None, r[0] if r else None)
        for params in p.updates:
            if conn.execute(_UPDATE_EXECUTION, params).rowcount != 1:
                raise StoreError(f"store {op} failed: execution {params[-1]} does not exist")
        if p.journal:
            first = conn.execute("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM journal").fetchone()[0]
            conn.executemany(_INSERT_JOURNAL, [(first + i, *row) for i, row in enumerate(p.journal)])
        if p.receipts:
            conn.executemany(_UPSERT_RECEIPT, p.receipts)
        if p.results:
            conn.executemany(_INSERT_RESULT, p.results)
        if p.outbox:
            conn.executemany(_INSERT_OUTBOX, p.outbox)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def key_dir(self) -> str | None:
        return None if self._memory else os.path.dirname(self.path)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, durability={self.durability!r})"

    # -- plan registry -----------------------------------------------------------------------------------------
    def register_plan(self, plan_id: str, version: int, digest: str, document: dict[str, Any]) -> bool:
        text = dumps(document, "the plan document", "register_plan")
        with self._tx("register_plan") as conn:
            cur = conn.execute(
                "INSERT INTO plans (plan_id, version, digest, document, registered_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (plan_id, version) DO NOTHING",
                (plan_id, version, digest, text, now_ms()),
            )
            if cur.rowcount == 1:
                return True
            (registered,) = conn.execute(
                "SELECT digest FROM plans WHERE plan_id = ? AND version = ?", (plan_id, version)
            ).fetchone()
        if registered != digest:
            raise PlanImmutableError(plan_id, version, registered, digest)
        return False

    def get_plan(self, plan_id: str, version: int) -> tuple[str, dict[str, Any]] | None:
        r = self._one("get_plan", "SELECT digest, document FROM plans WHERE plan_id = ? AND version = ?",
                      (plan_id, version))
        return None if r is None else (r[0], _load(r[1]))

    # -- executions --------------------------------------------------------------------------------------------
    def create_execution(self, row: ExecutionRow, batch: WriteBatch | None = None) -> ExecutionRow | None:
        params = execution_params(row, "create_execution")
        prepared = PreparedBatch(batch, "create_execution")
        with self._tx("create_execution") as conn:
            if conn.execute(_INSERT_EXECUTION, params).rowcount != 1:
                r = conn.execute(
                    f"SELECT {EXECUTION_SELECT} FROM executions WHERE execution_id = ?", (row.execution_id,)
                ).fetchone()
                return execution_from_row(r, _load)
            self._apply(conn, prepared, "create_execution")
        return None

    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        r = self._one("get_execution", f"SELECT {EXECUTION_SELECT} FROM executions WHERE execution_id = ?",
                      (execution_id,))
        return None if r is None else execution_from_row(r, _load)

    def list_executions(self, *, limit: int = 50, status: str | None = None) -> list[ExecutionRow]:
        if status is None:
            rows = self._all("list_executions",
                             f"SELECT {EXECUTION_SELECT} FROM executions "
                             "ORDER BY created_at DESC, execution_id DESC LIMIT ?", (limit,))
        else:
            rows = self._all("list_executions",
                             f"SELECT {EXECUTION_SELECT} FROM executions WHERE status = ? "
                             "ORDER BY created_at DESC, execution_id DESC LIMIT ?", (status, limit))
        return [execution_from_row(r, _load) for r in rows]

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        prepared = PreparedBatch(batch, "write")
        with self._tx("write") as conn:
            self._apply(conn, prepared, "write")

    def renew_lease(self, execution_id: str, owner: str, expires_at: int) -> bool:
        with self._tx("renew_lease") as conn:
            return conn.execute(
                "UPDATE executions SET lease_expires_at = ? "
                "WHERE execution_id = ? AND status = 'running' AND lease_owner = ?",
                (expires_at, execution_id, owner),
            ).rowcount == 1

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

    def get_result(self, execution_id: str) -> dict[str, Any] | None:
        r = self._one("get_result", "SELECT document FROM results WHERE execution_id = ?", (execution_id,))
        return None if r is None else _load(r[0])

    # -- journal -----------------------------------------------------------------------------------------------
    def journal(self, execution_id: str | None = None, *, start: int = 0) -> Iterator[StoredJournalRecord]:
        cols = "leaf_index, execution_id, seq, kind, body, entry_hash"
        if execution_id is None:
            sql = f"SELECT {cols} FROM journal WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?"
        else:
            sql = (f"SELECT {cols} FROM journal WHERE execution_id = ? AND leaf_index >= ? "
                   "ORDER BY leaf_index LIMIT ?")
        chunk = self.journal_chunk
        nxt = max(0, start)
        while True:
            params = (nxt, chunk) if execution_id is None else (execution_id, nxt, chunk)
            rows = self._all("journal read", sql, params)  # the lock is not held between chunks
            for r in rows:
                yield StoredJournalRecord(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])
            if len(rows) < chunk:
                return
            nxt = rows[-1][0] + 1

    def journal_tail(self, execution_id: str) -> tuple[int, str] | None:
        r = self._one("journal_tail",
                      "SELECT seq, entry_hash FROM journal WHERE execution_id = ? ORDER BY seq DESC LIMIT 1",
                      (execution_id,))
        return None if r is None else (r[0], r[1])

    def journal_size(self) -> int:
        return self._one("journal_size", "SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM journal")[0]

    def leaf_hashes(self, end: int | None = None) -> list[bytes]:
        if end is None:
            end = self.journal_size()
        out: list[bytes] = []
        while len(out) < end:
            rows = self._all("leaf_hashes",
                             "SELECT leaf_index, leaf_hash FROM journal WHERE leaf_index >= ? AND leaf_index < ? "
                             "ORDER BY leaf_index LIMIT ?", (len(out), end, self.hash_chunk))
            if not rows:
                break
            for idx, h in rows:
                if idx != len(out):
                    raise StoreError(f"store leaf_hashes failed: the journal has no leaf {len(out)} (next is {idx})")
                out.append(bytes(h))
        return out

    # -- receipts ----------------------------------------------------------------------------------------------
    def find_receipt(self, idempotency_key: str) -> dict[str, Any] | None:
        r = self._one("find_receipt",
                      "SELECT document FROM receipts WHERE idempotency_key = ? AND status = 'succeeded' "
                      "ORDER BY rowid DESC LIMIT 1", (idempotency_key,))
        return None if r is None else _load(r[0])

    def receipts(self, execution_id: str) -> list[dict[str, Any]]:
        rows = self._all("receipts", "SELECT document FROM receipts WHERE execution_id = ? ORDER BY rowid",
                         (execution_id,))
        return [_load(r[0]) for r in rows]

    # -- outbox ------------------------------------------------------------------------------------------------
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

    def outbox_done(self, outbox_id: int, now: int) -> None:
        with self._tx("outbox_done") as conn:
            conn.execute("UPDATE outbox SET delivered_at = ? WHERE id = ?", (now, outbox_id))

    def outbox_retry(self, outbox_id: int, next_at: int, error: str) -> None:
        with self._tx("outbox_retry") as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
                         (next_at, error, outbox_id))

    def outbox_pending(self) -> int:
        return self._one("outbox_pending", "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")[0]

    # -- tokens ------------------------------------------------------------------------------------------------
    def put_token(self, row: TokenRow) -> None:
        params = token_params(row, "put_token")
        with self._tx("put_token") as conn:
            conn.execute(f"INSERT INTO tokens ({TOKEN_SELECT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", params)

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        r = self._one("token_by_hash", f"SELECT {TOKEN_SELECT} FROM tokens WHERE token_hash = ?", (token_hash,))
        return None if r is None else token_from_row(r, _load)

    def revoke_token(self, token_id: str) -> bool:
        with self._tx("revoke_token") as conn:
            return conn.execute("UPDATE tokens SET revoked = 1 WHERE token_id = ?", (token_id,)).rowcount == 1

    def list_tokens(self) -> list[TokenRow]:
        rows = self._all("list_tokens", f"SELECT {TOKEN_SELECT} FROM tokens ORDER BY created_at, token_id")
        return [token_from_row(r, _load) for r in rows]

    # -- checkpoints -------------------------------------------------------------------------------------------
    def save_checkpoint(self, row: CheckpointRow) -> None:
        with self._tx("save_checkpoint") as conn:
            conn.execute("INSERT INTO checkpoints (tree_size, root_hash, note, created_at) VALUES (?, ?, ?, ?)",
                         (row.tree_size, bytes(row.root_hash), row.note, row.created_at))

    def latest_checkpoint(self) -> CheckpointRow | None:
        r = self._one("latest_checkpoint",
                      "SELECT tree_size, root_hash, note, created_at FROM checkpoints "
                      "ORDER BY tree_size DESC, id DESC LIMIT 1")
        return None if r is None else CheckpointRow(r[0], bytes(r[1]), r[2], r[3])
