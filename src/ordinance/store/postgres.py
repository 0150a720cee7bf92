"""The PostgreSQL store: many workers on many machines sharing one database (§5.8).

psycopg 3, with a small built-in pool of connections (one per concurrently active thread, up to ``pool_size``).
Connections run in driver autocommit mode and every multi-statement operation is an explicit
``BEGIN`` … ``COMMIT`` block (``conn.transaction()``): each :meth:`write` is exactly one transaction, a failure
rolls all of it back, and no connection is ever left idle inside a transaction. Single-statement operations
(the claims, lease renewal, outbox bookkeeping) are atomic on their own.

Journal leaf indices are taken from the single ``ledger_head`` counter row
(``UPDATE ledger_head SET size = size + n RETURNING size``): its row lock is held until commit, so concurrent
writers append one after the other, indices are gap-free and follow commit order, and a rolled-back write gives
its indices back. ``claim_queued``, ``claim_expired`` and ``outbox_claim`` select with ``FOR UPDATE SKIP LOCKED``,
so two workers never take the same row and never wait on each other.

``schema=`` (or ``options=-csearch_path=…`` in the URL) places every table in one PostgreSQL schema, created if
missing; :attr:`url` then names that schema, so ``open_store(store.url)`` reaches the same data.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

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

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_WRAPPED = (psycopg.Error, OverflowError, ValueError)
_IDLE = psycopg.pq.TransactionStatus.IDLE


def _same(value: Any) -> Any:
    """psycopg already decodes ``json`` columns."""
    return value


def _msg(exc: BaseException) -> str:
    """psycopg messages span lines (LINE 1: …, ^); one line reads better in logs and CLI output."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _scalar(conn: psycopg.Connection, query: str, params: Any = ()) -> Any:
    """The first column of the one row a query returns."""
    r = conn.execute(query, params).fetchone()
    assert r is not None, query
    return r[0]


def _ph(n: int) -> str:
    return ", ".join(["%s"] * n)


_EXEC_E = ", ".join(f"e.{c}" for c in schema.EXECUTION_COLUMNS)
_INSERT_EXECUTION = (
    f"INSERT INTO executions ({EXECUTION_SELECT}) VALUES ({_ph(len(schema.EXECUTION_COLUMNS))}) "
    "ON CONFLICT (execution_id) DO NOTHING"
)
_UPDATE_EXECUTION = (
    "UPDATE executions SET status = %s, updated_at = %s, "
    "lease_owner = CASE WHEN %s THEN NULL ELSE lease_owner END, "
    "lease_expires_at = CASE WHEN %s THEN NULL ELSE lease_expires_at END "
    "WHERE execution_id = %s"
)
_INSERT_JOURNAL = (
    "INSERT INTO journal (leaf_index, execution_id, seq, kind, body, entry_hash, leaf_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_UPSERT_RECEIPT = (
    "INSERT INTO receipts (operation_id, execution_id, step_id, attempt, idempotency_key, status, document) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (operation_id) DO UPDATE SET "
    "execution_id = EXCLUDED.execution_id, step_id = EXCLUDED.step_id, attempt = EXCLUDED.attempt, "
    "idempotency_key = EXCLUDED.idempotency_key, status = EXCLUDED.status, document = EXCLUDED.document"
)
_INSERT_RESULT = "INSERT INTO results (execution_id, document, digest) VALUES (%s, %s, %s)"
_INSERT_OUTBOX = "INSERT INTO outbox (event_id, execution_id, event) VALUES (%s, %s, %s)"


class _Pool:
    """At most ``size`` connections, created on demand, handed to one thread at a time."""

    def __init__(self, connect: Callable[[str], psycopg.Connection], size: int) -> None:
        self._connect = connect
        self._size = max(1, size)
        self._idle: list[psycopg.Connection] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, op: str) -> psycopg.Connection:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError(f"store {op} failed: the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._count < self._size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return self._connect(op)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, conn: psycopg.Connection) -> None:
        healthy = not conn.closed and not conn.broken and conn.info.transaction_status == _IDLE
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(conn)
                conn = None  # type: ignore[assignment]
            else:
                self._count -= 1
            self._cond.notify()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            try:
                conn.close()
            except psycopg.Error:
                pass


def _url_with_search_path(url: str, schema_name: str) -> str:
    """``url`` with ``-csearch_path=<schema>`` added to its ``options`` (URL or key=value form)."""
    if "://" not in url:
        opts = conninfo_to_dict(url).get("options") or ""
        return make_conninfo(url, options=f"{opts} -csearch_path={schema_name}".strip())
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    opts = " ".join([v for k, v in query if k == "options"] + [f"-csearch_path={schema_name}"])
    query = [(k, v) for k, v in query if k != "options"] + [("options", opts)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class PostgresStore(Store):
    """PostgreSQL-backed :class:`~ordinance.store.base.Store`.

    ``schema``: put the tables in this PostgreSQL schema (created if missing; lowercase identifier).
    ``durability``: ``"full"`` (default: the server's ``synchronous_commit``) or ``"normal"``/``"off"``
    (``synchronous_commit = off``: a crash of the *server* may lose the last commits, never corrupt).
    """

    journal_chunk = 2000
    hash_chunk = 50_000

    def __init__(
        self, url: str, *, schema: str | None = None, durability: str = "full", pool_size: int = 4,
        connect_timeout: int = 10,
    ) -> None:
        if durability not in ("full", "normal", "off"):
            raise ValueError(f"durability must be one of full, normal, off, not {durability!r}")
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a lowercase SQL identifier, not {schema!r}")
        self.url = _url_with_search_path(url, schema) if schema else url
        self.durability = durability
        self._schema = schema
        try:
            params = conninfo_to_dict(self.url)
        except psycopg.Error as exc:
            raise StoreError(f"store open failed: bad PostgreSQL URL: {exc}") from exc
        self._conninfo = self.url
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = connect_timeout
        if "application_name" not in params:
            self._connect_kwargs["application_name"] = "ordinance"
        self._pool = _Pool(self._new_connection, pool_size)
        try:
            self._setup()
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _new_connection(self, op: str) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
            if self.durability != "full":
                conn.execute("SET synchronous_commit = off")
            return conn
        except psycopg.Error as exc:
            raise StoreError(f"store {op} failed: cannot connect to PostgreSQL: {_msg(exc)}") from exc

    def _setup(self) -> None:
        with self._conn("open") as conn:
            if self._schema:
                try:
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
                except psycopg.errors.UniqueViolation:
                    pass  # created concurrently by another opener
            current_schema = _scalar(conn, "SELECT current_schema()")
            if current_schema is None:
                path = _scalar(conn, "SHOW search_path")
                raise StoreError(
                    f"store open failed: no schema on the search_path ({path}) exists; create it or pass schema="
                )
            self._where = f"PostgreSQL schema {current_schema}"
            if self._version(conn) == schema.latest_version():
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('ordinance.schema.' || current_schema()))")
                conn.execute(schema.SCHEMA_VERSION_DDL)
                current = _scalar(conn, "SELECT MAX(version) FROM schema_version")
                for m in schema.pending_migrations(current, self._where):
                    try:
                        with conn.transaction():  # a savepoint, so the failure can name the migration
                            for stmt in m.postgres:
                                conn.execute(stmt)
                    except psycopg.Error as exc:
                        raise StoreError(
                            f"store open failed: {self._where}: migration {m.version} ({m.description}) failed: "
                            f"{_msg(exc)}; the store is left at version {current or 0}"
                        ) from exc
                    conn.execute(
                        "INSERT INTO schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
                        (m.version, m.description, now_ms()),
                    )

    @staticmethod
    def _version(conn: psycopg.Connection) -> int | None:
        if _scalar(conn, "SELECT to_regclass('schema_version')") is None:
            return None
        return _scalar(conn, "SELECT MAX(version) FROM schema_version")

    def schema_version(self) -> int:
        with self._conn("schema_version") as conn:
            return self._version(conn) or 0

    @contextmanager
    def _conn(self, op: str) -> Iterator[psycopg.Connection]:
        conn = self._pool.acquire(op)
        try:
            yield conn
        except StoreError:
            raise
        except _WRAPPED as exc:
            raise StoreError(f"store {op} failed: {_msg(exc)}") from exc
        finally:
            self._pool.release(conn)

    @contextmanager
    def _tx(self, op: str) -> Iterator[psycopg.Connection]:
        with self._conn(op) as conn, conn.transaction():
            yield conn

    def _all(self, op: str, query: str, params: Any = ()) -> list[Any]:
        with self._conn(op) as conn:
            return conn.execute(query, params).fetchall()

    def _one(self, op: str, query: str, params: Any = ()) -> Any:
        with self._conn(op) as conn:
            return conn.execute(query, params).fetchone()

    @staticmethod
    def _apply(conn: psycopg.Connection, p: PreparedBatch, op: str) -> None:
        cur = conn.cursor()
        if p.lease is not None:
            # FOR UPDATE: a concurrent claim_expired waits for this transaction, so the check holds until COMMIT.
            cur.execute("SELECT status, lease_owner FROM executions WHERE execution_id = %s FOR UPDATE", (p.lease[0],))
            r = cur.fetchone()
            if r is None or r[0] != "running" or r[1] != p.lease[1]:
                raise LeaseLostError(p.lease[0], p.lease[1], r[1] if r else None, r[0] if r else None)
        for params in p.updates:
            cur.execute(_UPDATE_EXECUTION, params)
            if cur.rowcount != 1:
                raise StoreError(f"store {op} failed: execution {params[-1]} does not exist")
        if p.journal:
            n = len(p.journal)
            # The row lock on ledger_head is held until COMMIT: appends are serialised in commit order.
            cur.execute("UPDATE ledger_head SET size = size + %s WHERE id = 1 RETURNING size", (n,))
            head = cur.fetchone()
            if head is None:
                raise StoreError(f"store {op} failed: the ledger_head row is missing (a damaged schema)")
            first = head[0] - n
            cur.executemany(_INSERT_JOURNAL, [(first + i, *row) for i, row in enumerate(p.journal)])
        if p.receipts:
            cur.executemany(_UPSERT_RECEIPT, p.receipts)
        if p.results:
            cur.executemany(_INSERT_RESULT, p.results)
        if p.outbox:
            cur.executemany(_INSERT_OUTBOX, p.outbox)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def key_dir(self) -> str | None:
        return None

    def __repr__(self) -> str:
        return f"PostgresStore({getattr(self, '_where', '?')})"

    # -- plan registry -----------------------------------------------------------------------------------------
    def register_plan(self, plan_id: str, version: int, digest: str, document: dict[str, Any]) -> bool:
        text = dumps(document, "the plan document", "register_plan")
        with self._tx("register_plan") as conn:
            cur = conn.execute(
                "INSERT INTO plans (plan_id, version, digest, document, registered_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (plan_id, version) DO NOTHING",
                (plan_id, version, digest, text, now_ms()),
            )
            if cur.rowcount == 1:
                return True
            registered = _scalar(conn, "SELECT digest FROM plans WHERE plan_id = %s AND version = %s",
                                 (plan_id, version))
        if registered != digest:
            raise PlanImmutableError(plan_id, version, registered, digest)
        return False

    def get_plan(self, plan_id: str, version: int) -> tuple[str, dict[str, Any]] | None:
        r = self._one("get_plan", "SELECT digest, document FROM plans WHERE plan_id = %s AND version = %s",
                      (plan_id, version))
        return None if r is None else (r[0], r[1])

    # -- executions --------------------------------------------------------------------------------------------
    def create_execution(self, row: ExecutionRow, batch: WriteBatch | None = None) -> ExecutionRow | None:
        params = execution_params(row, "create_execution")
        prepared = PreparedBatch(batch, "create_execution")
        with self._tx("create_execution") as conn:
            if conn.execute(_INSERT_EXECUTION, params).rowcount != 1:
                r = conn.execute(
                    f"SELECT {EXECUTION_SELECT} FROM executions WHERE execution_id = %s", (row.execution_id,)
                ).fetchone()
                return execution_from_row(r, _same)
            self._apply(conn, prepared, "create_execution")
        return None

    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        r = self._one("get_execution", f"SELECT {EXECUTION_SELECT} FROM executions WHERE execution_id = %s",
                      (execution_id,))
        return None if r is None else execution_from_row(r, _same)

    def list_executions(self, *, limit: int = 50, status: str | None = None) -> list[ExecutionRow]:
        if status is None:
            rows = self._all("list_executions",
                             f"SELECT {EXECUTION_SELECT} FROM executions "
                             "ORDER BY created_at DESC, execution_id DESC LIMIT %s", (limit,))
        else:
            rows = self._all("list_executions",
                             f"SELECT {EXECUTION_SELECT} FROM executions WHERE status = %s "
                             "ORDER BY created_at DESC, execution_id DESC LIMIT %s", (status, limit))
        return [execution_from_row(r, _same) for r in rows]

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        prepared = PreparedBatch(batch, "write")
        with self._tx("write") as conn:
            self._apply(conn, prepared, "write")

    def renew_lease(self, execution_id: str, owner: str, expires_at: int) -> bool:
        with self._conn("renew_lease") as conn:
            return conn.execute(
                "UPDATE executions SET lease_expires_at = %s "
                "WHERE execution_id = %s AND status = 'running' AND lease_owner = %s",
                (expires_at, execution_id, owner),
            ).rowcount == 1

    def claim_expired(self, now: int, owner: str, lease_ms: int, limit: int = 100) -> list[ExecutionRow]:
        rows = self._all(
            "claim_expired",
            f"UPDATE executions e SET lease_owner = %s, lease_expires_at = %s "
            f"FROM (SELECT execution_id FROM executions WHERE status = 'running' AND lease_expires_at < %s "
            f"      ORDER BY lease_expires_at, execution_id LIMIT %s FOR UPDATE SKIP LOCKED) c "
            f"WHERE e.execution_id = c.execution_id RETURNING {_EXEC_E}",
            (owner, now + lease_ms, now, limit),
        )
        claimed = [execution_from_row(r, _same) for r in rows]
        claimed.sort(key=lambda r: (r.created_at, r.execution_id))
        return claimed

    def claim_queued(self, owner: str, now: int, lease_ms: int) -> ExecutionRow | None:
        r = self._one(
            "claim_queued",
            f"UPDATE executions e SET status = 'running', lease_owner = %s, lease_expires_at = %s, updated_at = %s "
            f"FROM (SELECT execution_id FROM executions WHERE status = 'queued' "
            f"      ORDER BY created_at, execution_id LIMIT 1 FOR UPDATE SKIP LOCKED) c "
            f"WHERE e.execution_id = c.execution_id RETURNING {_EXEC_E}",
            (owner, now + lease_ms, now),
        )
        return None if r is None else execution_from_row(r, _same)

    def get_result(self, execution_id: str) -> dict[str, Any] | None:
        r = self._one("get_result", "SELECT document FROM results WHERE execution_id = %s", (execution_id,))
        return None if r is None else r[0]

    # -- journal -----------------------------------------------------------------------------------------------
    def journal(self, execution_id: str | None = None, *, start: int = 0) -> Iterator[StoredJournalRecord]:
        cols = "leaf_index, execution_id, seq, kind, body, entry_hash"
        if execution_id is None:
            query = f"SELECT {cols} FROM journal WHERE leaf_index >= %s ORDER BY leaf_index LIMIT %s"
        else:
            query = (f"SELECT {cols} FROM journal WHERE execution_id = %s AND leaf_index >= %s "
                     "ORDER BY leaf_index LIMIT %s")
        chunk = self.journal_chunk
        nxt = max(0, start)
        while True:
            params = (nxt, chunk) if execution_id is None else (execution_id, nxt, chunk)
            rows = self._all("journal read", query, params)  # no connection is held between chunks
            for r in rows:
                yield StoredJournalRecord(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])
            if len(rows) < chunk:
                return
            nxt = rows[-1][0] + 1

    def journal_tail(self, execution_id: str) -> tuple[int, str] | None:
        r = self._one("journal_tail",
                      "SELECT seq, entry_hash FROM journal WHERE execution_id = %s ORDER BY seq DESC LIMIT 1",
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
                             "SELECT leaf_index, leaf_hash FROM journal WHERE leaf_index >= %s AND leaf_index < %s "
                             "ORDER BY leaf_index LIMIT %s", (len(out), end, self.hash_chunk))
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
                      "SELECT document FROM receipts WHERE idempotency_key = %s AND status = 'succeeded' "
                      "ORDER BY n DESC LIMIT 1", (idempotency_key,))
        return None if r is None else r[0]

    def receipts(self, execution_id: str) -> list[dict[str, Any]]:
        rows = self._all("receipts", "SELECT document FROM receipts WHERE execution_id = %s ORDER BY n",
                         (execution_id,))
        return [r[0] for r in rows]

    # -- outbox ------------------------------------------------------------------------------------------------
    def outbox_claim(self, now: int, limit: int = 100) -> list[tuple[int, OutboxEvent, int]]:
        rows = self._all(
            "outbox_claim",
            "UPDATE outbox o SET next_at = %s "
            "FROM (SELECT id FROM outbox WHERE delivered_at IS NULL AND next_at <= %s "
            "      ORDER BY next_at, id LIMIT %s FOR UPDATE SKIP LOCKED) c "
            "WHERE o.id = c.id RETURNING o.id, o.event_id, o.execution_id, o.event, o.attempts",
            (now + OUTBOX_CLAIM_MS, now, limit),
        )
        rows.sort(key=lambda r: r[0])
        return [(r[0], OutboxEvent(r[1], r[2], r[3]), r[4]) for r in rows]

    def outbox_done(self, outbox_id: int, now: int) -> None:
        with self._conn("outbox_done") as conn:
            conn.execute("UPDATE outbox SET delivered_at = %s WHERE id = %s", (now, outbox_id))

    def outbox_retry(self, outbox_id: int, next_at: int, error: str) -> None:
        with self._conn("outbox_retry") as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, next_at = %s, last_error = %s WHERE id = %s",
                         (next_at, error, outbox_id))

    def outbox_pending(self) -> int:
        return self._one("outbox_pending", "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")[0]

    # -- tokens ------------------------------------------------------------------------------------------------
    def put_token(self, row: TokenRow) -> None:
        params = token_params(row, "put_token")
        with self._conn("put_token") as conn:
            conn.execute(f"INSERT INTO tokens ({TOKEN_SELECT}) VALUES ({_ph(8)})", params)

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        r = self._one("token_by_hash", f"SELECT {TOKEN_SELECT} FROM tokens WHERE token_hash = %s", (token_hash,))
        return None if r is None else token_from_row(r, _same)

    def revoke_token(self, token_id: str) -> bool:
        with self._conn("revoke_token") as conn:
            return conn.execute("UPDATE tokens SET revoked = TRUE WHERE token_id = %s", (token_id,)).rowcount == 1

    def list_tokens(self) -> list[TokenRow]:
        rows = self._all("list_tokens", f"SELECT {TOKEN_SELECT} FROM tokens ORDER BY created_at, token_id")
        return [token_from_row(r, _same) for r in rows]

    # -- checkpoints -------------------------------------------------------------------------------------------
    def save_checkpoint(self, row: CheckpointRow) -> None:
        with self._conn("save_checkpoint") as conn:
            conn.execute("INSERT INTO checkpoints (tree_size, root_hash, note, created_at) VALUES (%s, %s, %s, %s)",
                         (row.tree_size, bytes(row.root_hash), row.note, row.created_at))

    def latest_checkpoint(self) -> CheckpointRow | None:
        r = self._one("latest_checkpoint",
                      "SELECT tree_size, root_hash, note, created_at FROM checkpoints "
                      "ORDER BY tree_size DESC, id DESC LIMIT 1")
        return None if r is None else CheckpointRow(r[0], bytes(r[1]), r[2], r[3])
