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

The statements and steps shared with SQLite live in :mod:`ordinance.store.sqlbase`; this module keeps the pool,
the transactions, the schema bootstrap, journal leaf assignment and the claims.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import schema
from .base import ExecutionRow, OutboxEvent, StoreError
from .schema import OUTBOX_CLAIM_MS, execution_from_row, now_ms
from .sqlbase import Connection, SQLStore, Statements

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


_EXEC_E = ", ".join(f"e.{c}" for c in schema.EXECUTION_COLUMNS)


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


class PostgresStore(SQLStore):
    """PostgreSQL-backed :class:`~ordinance.store.base.Store`.

    ``schema``: put the tables in this PostgreSQL schema (created if missing; lowercase identifier).
    ``durability``: ``"full"`` (default: the server's ``synchronous_commit``) or ``"normal"``/``"off"``
    (``synchronous_commit = off``: a crash of the *server* may lose the last commits, never corrupt).
    """

    # FOR UPDATE on the lease check: a concurrent claim_expired waits for the write, so the check holds until COMMIT.
    _sql = Statements("%s", receipt_order="n", true="TRUE", lease_lock="FOR UPDATE")
    _decode_json = staticmethod(_same)

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
            if self._current_version(conn) == schema.latest_version():
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
    def _current_version(conn: psycopg.Connection) -> int | None:
        if _scalar(conn, "SELECT to_regclass('schema_version')") is None:
            return None
        return _scalar(conn, "SELECT MAX(version) FROM schema_version")

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

    _reading = _conn  # a single statement runs on its own (autocommit)

    def _execute(self, op: str, statement: str, params: Any) -> int:
        with self._conn(op) as conn:
            return conn.execute(statement, params).rowcount

    @staticmethod
    def _assign_leaves(cur: Connection, n: int, op: str) -> int:
        # The row lock on ledger_head is held until COMMIT: appends are serialised in commit order.
        head = cur.execute("UPDATE ledger_head SET size = size + %s WHERE id = 1 RETURNING size", (n,)).fetchone()
        if head is None:
            raise StoreError(f"store {op} failed: the ledger_head row is missing (a damaged schema)")
        return head[0] - n

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.close()

    @property
    def key_dir(self) -> str | None:
        return None

    def __repr__(self) -> str:
        return f"PostgresStore({getattr(self, '_where', '?')})"

    # -- claims: FOR UPDATE SKIP LOCKED, one UPDATE … RETURNING each ------------------------------------------
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
