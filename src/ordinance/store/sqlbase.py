"""What the two SQL stores share (§5.8): every :class:`~ordinance.store.base.Store` method whose statements and
steps are the same on SQLite and PostgreSQL, written once in :class:`SQLStore`.

The shared statements are written once, with ``?`` placeholders, in :class:`Statements`, and rendered for each
dialect when its store class is defined (:func:`render`), never per call. A backend subclass supplies:

- ``_sql``: its :class:`Statements` (placeholder style and the few words that differ);
- ``_reading(op)``: a connection for one read statement; ``_tx(op)``: a connection inside one transaction that
  commits on exit and rolls back on any error. Both turn driver errors into ``StoreError("store {op} failed: …")``;
- ``_execute(op, statement, params)``: one data-changing statement on its own, atomically; returns its row count;
- ``_decode_json(value)``: a JSON column as read by the driver → the document;
- ``_assign_leaves(cur, n, op)``: inside the write transaction, reserve ``n`` journal leaf indices and return
  the first (the one step of a write whose locking differs between the backends);
- ``_current_version(conn)``: the applied schema version, or None;
- the lifecycle (``close``, ``key_dir``) and the claims (``claim_expired``, ``claim_queued``, ``outbox_claim``),
  whose locking is dialect-specific.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Self

from .base import (
    CheckpointRow,
    ExecutionRow,
    LeaseLostError,
    PlanImmutableError,
    Store,
    StoredJournalRecord,
    StoreError,
    TokenRow,
    WriteBatch,
)
from .schema import (
    EXECUTION_COLUMNS,
    EXECUTION_SELECT,
    TOKEN_COLUMNS,
    TOKEN_SELECT,
    PreparedBatch,
    dumps,
    execution_from_row,
    execution_params,
    now_ms,
    token_from_row,
    token_params,
)

__all__ = ["SQLStore", "Statements", "render"]

#: A DB-API connection or cursor of either driver (sqlite3, psycopg).
Connection = Any

# What may hold a "?" or "%" that is not a placeholder: string literals, quoted identifiers, comments.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|[?%'"$]""", re.DOTALL)


def render(template: str, placeholder: str) -> str:
    """``template``, written with ``?`` placeholders, for a driver whose placeholder is ``placeholder``.

    ``"?"`` (sqlite3's qmark style) returns it unchanged. ``"%s"`` (psycopg's format style) turns each ``?``
    outside string literals, quoted identifiers and comments into ``%s`` and doubles every ``%`` (psycopg reads
    ``%`` everywhere in a statement that is given parameters, even inside literals). The result is meant to be
    executed with a parameter sequence (possibly empty). Dollar quoting and backslash-escaped literals are not
    understood: a template with ``$`` or an unterminated quote is refused (ValueError), never mistranslated.
    """
    if placeholder == "?":
        return template
    if placeholder != "%s":
        raise ValueError(f"unsupported placeholder {placeholder!r} (use '?' or '%s')")

    def swap(m: re.Match[str]) -> str:
        t = m.group()
        if t == "?":
            return "%s"
        if t in ("'", '"', "$"):
            raise ValueError(f"cannot render {template!r}: unterminated quote or dollar quoting ({t})")
        return t.replace("%", "%%")

    return _TOKENS.sub(swap, template)


class Statements:
    """The statements of :class:`SQLStore`, rendered once for one dialect.

    ``receipt_order``: the column giving receipts' insertion order; ``true``: the boolean literal for ``tokens.
    revoked``; ``lease_lock``: appended to the lease-fencing read in :meth:`SQLStore.write` (e.g. ``FOR UPDATE``).
    """

    def __init__(self, placeholder: str, *, receipt_order: str, true: str, lease_lock: str = "") -> None:
        def q(template: str) -> str:
            return render(template, placeholder)

        def values(n: int) -> str:
            return ", ".join("?" * n)

        by_id = f"SELECT {EXECUTION_SELECT} FROM executions WHERE execution_id = ?"
        newest = "ORDER BY created_at DESC, execution_id DESC LIMIT ?"
        journal_cols = "SELECT leaf_index, execution_id, seq, kind, body, entry_hash FROM journal"
        # -- write() -------------------------------------------------------------------------------------------
        self.fence = q(f"SELECT status, lease_owner FROM executions WHERE execution_id = ? {lease_lock}".rstrip())
        self.update_execution = q(
            "UPDATE executions SET status = ?, updated_at = ?, "
            "lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, "
            "lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END "
            "WHERE execution_id = ?"
        )
        self.insert_journal = q(
            "INSERT INTO journal (leaf_index, execution_id, seq, kind, body, entry_hash, leaf_hash) "
            f"VALUES ({values(7)})"
        )
        self.upsert_receipt = q(
            "INSERT INTO receipts (operation_id, execution_id, step_id, attempt, idempotency_key, status, document) "
            f"VALUES ({values(7)}) ON CONFLICT (operation_id) DO UPDATE SET "
            "execution_id = EXCLUDED.execution_id, step_id = EXCLUDED.step_id, attempt = EXCLUDED.attempt, "
            "idempotency_key = EXCLUDED.idempotency_key, status = EXCLUDED.status, document = EXCLUDED.document"
        )
        self.insert_result = q(f"INSERT INTO results (execution_id, document, digest) VALUES ({values(3)})")
        self.insert_outbox = q(f"INSERT INTO outbox (event_id, execution_id, event) VALUES ({values(3)})")
        # -- plans -----------------------------------------------------------------------------------------------
        self.insert_plan = q(
            f"INSERT INTO plans (plan_id, version, digest, document, registered_at) VALUES ({values(5)}) "
            "ON CONFLICT (plan_id, version) DO NOTHING"
        )
        self.plan_digest = q("SELECT digest FROM plans WHERE plan_id = ? AND version = ?")
        self.get_plan = q("SELECT digest, document FROM plans WHERE plan_id = ? AND version = ?")
        # -- executions ------------------------------------------------------------------------------------------
        self.insert_execution = q(
            f"INSERT INTO executions ({EXECUTION_SELECT}) VALUES ({values(len(EXECUTION_COLUMNS))}) "
            "ON CONFLICT (execution_id) DO NOTHING"
        )
        self.get_execution = q(by_id)
        self.list_executions = q(f"SELECT {EXECUTION_SELECT} FROM executions {newest}")
        self.list_executions_by_status = q(f"SELECT {EXECUTION_SELECT} FROM executions WHERE status = ? {newest}")
        self.renew_lease = q(
            "UPDATE executions SET lease_expires_at = ? "
            "WHERE execution_id = ? AND status = 'running' AND lease_owner = ?"
        )
        self.get_result = q("SELECT document FROM results WHERE execution_id = ?")
        # -- journal ---------------------------------------------------------------------------------------------
        self.journal = q(f"{journal_cols} WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?")
        # ORDER BY seq walks UNIQUE (execution_id, seq); within an execution seq order is leaf order
        self.journal_of = q(f"{journal_cols} WHERE execution_id = ? AND leaf_index >= ? ORDER BY seq LIMIT ?")
        self.journal_tail = q(
            "SELECT seq, entry_hash FROM journal WHERE execution_id = ? ORDER BY seq DESC LIMIT 1"
        )
        self.journal_size = q("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM journal")
        self.leaf_hashes = q(
            "SELECT leaf_index, leaf_hash FROM journal WHERE leaf_index >= ? AND leaf_index < ? "
            "ORDER BY leaf_index LIMIT ?"
        )
        # -- receipts --------------------------------------------------------------------------------------------
        self.find_receipt = q(
            "SELECT document FROM receipts WHERE idempotency_key = ? AND status = 'succeeded' "
            f"ORDER BY {receipt_order} DESC LIMIT 1"
        )
        self.receipts = q(f"SELECT document FROM receipts WHERE execution_id = ? ORDER BY {receipt_order}")
        # -- outbox ----------------------------------------------------------------------------------------------
        self.outbox_done = q("UPDATE outbox SET delivered_at = ? WHERE id = ?")
        self.outbox_retry = q("UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?")
        self.outbox_pending = q("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
        # -- tokens ----------------------------------------------------------------------------------------------
        self.put_token = q(f"INSERT INTO tokens ({TOKEN_SELECT}) VALUES ({values(len(TOKEN_COLUMNS))})")
        self.token_by_hash = q(f"SELECT {TOKEN_SELECT} FROM tokens WHERE token_hash = ?")
        self.revoke_token = q(f"UPDATE tokens SET revoked = {true} WHERE token_id = ?")
        self.list_tokens = q(f"SELECT {TOKEN_SELECT} FROM tokens ORDER BY created_at, token_id")
        # -- checkpoints -----------------------------------------------------------------------------------------
        self.save_checkpoint = q(
            f"INSERT INTO checkpoints (tree_size, root_hash, note, created_at) VALUES ({values(4)})"
        )
        self.latest_checkpoint = q(
            "SELECT tree_size, root_hash, note, created_at FROM checkpoints ORDER BY tree_size DESC, id DESC LIMIT 1"
        )
        self.list_checkpoints = q("SELECT tree_size, root_hash, note, created_at FROM checkpoints ORDER BY tree_size, id")


class SQLStore(Store):
    """A :class:`~ordinance.store.base.Store` over a DB-API SQL database; see the module for the subclass hooks."""

    #: Rows fetched per round when streaming the journal.
    journal_chunk = 2000
    #: Leaf hashes fetched per round.
    hash_chunk = 50_000

    _sql: ClassVar[Statements]

    # -- hooks -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _reading(self, op: str) -> AbstractContextManager[Connection]:
        """A connection for one read statement (each its own consistent snapshot)."""

    @abc.abstractmethod
    def _tx(self, op: str) -> AbstractContextManager[Connection]:
        """A connection inside one transaction: committed on exit, rolled back entirely on any error."""

    @abc.abstractmethod
    def _execute(self, op: str, statement: str, params: Any) -> int:
        """Run one data-changing statement atomically; its row count."""

    @staticmethod
    @abc.abstractmethod
    def _decode_json(value: Any, /) -> Any:
        """A JSON column's value as the driver returns it → the document."""

    @abc.abstractmethod
    def _assign_leaves(self, cur: Connection, n: int, op: str) -> int:
        """In the write transaction: reserve ``n`` consecutive leaf indices (gap-free, in commit order); the first."""

    @staticmethod
    @abc.abstractmethod
    def _current_version(conn: Connection) -> int | None:
        """The highest applied schema migration, or None before the first."""

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _all(self, op: str, sql: str, params: Any = ()) -> list[Any]:
        with self._reading(op) as conn:
            return conn.execute(sql, params).fetchall()

    def _one(self, op: str, sql: str, params: Any = ()) -> Any:
        with self._reading(op) as conn:
            return conn.execute(sql, params).fetchone()

    def _apply(self, conn: Connection, p: PreparedBatch, op: str) -> None:
        """Everything of a prepared batch, inside the caller's transaction."""
        s = self._sql
        cur = conn.cursor()
        if p.lease is not None:
            r = cur.execute(s.fence, (p.lease[0],)).fetchone()
            if r is None or r[0] != "running" or r[1] != p.lease[1]:
                raise LeaseLostError(p.lease[0], p.lease[1], r[1] if r else None, r[0] if r else None)
        for params in p.updates:
            if cur.execute(s.update_execution, params).rowcount != 1:
                raise StoreError(f"store {op} failed: execution {params[-1]} does not exist")
        if p.journal:
            first = self._assign_leaves(cur, len(p.journal), op)
            cur.executemany(s.insert_journal, [(first + i, *row) for i, row in enumerate(p.journal)])
        if p.receipts:
            cur.executemany(s.upsert_receipt, p.receipts)
        if p.results:
            cur.executemany(s.insert_result, p.results)
        if p.outbox:
            cur.executemany(s.insert_outbox, p.outbox)

    def schema_version(self) -> int:
        with self._reading("schema_version") as conn:
            return self._current_version(conn) or 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plan registry -----------------------------------------------------------------------------------------
    def register_plan(self, plan_id: str, version: int, digest: str, document: dict[str, Any]) -> bool:
        text = dumps(document, "the plan document", "register_plan")
        with self._tx("register_plan") as conn:
            if conn.execute(self._sql.insert_plan, (plan_id, version, digest, text, now_ms())).rowcount == 1:
                return True
            (registered,) = conn.execute(self._sql.plan_digest, (plan_id, version)).fetchone()
        if registered != digest:
            raise PlanImmutableError(plan_id, version, registered, digest)
        return False

    def get_plan(self, plan_id: str, version: int) -> tuple[str, dict[str, Any]] | None:
        r = self._one("get_plan", self._sql.get_plan, (plan_id, version))
        return None if r is None else (r[0], self._decode_json(r[1]))

    # -- executions --------------------------------------------------------------------------------------------
    def create_execution(self, row: ExecutionRow, batch: WriteBatch | None = None) -> ExecutionRow | None:
        params = execution_params(row, "create_execution")
        prepared = PreparedBatch(batch, "create_execution")
        with self._tx("create_execution") as conn:
            if conn.execute(self._sql.insert_execution, params).rowcount != 1:
                r = conn.execute(self._sql.get_execution, (row.execution_id,)).fetchone()
                return execution_from_row(r, self._decode_json)
            self._apply(conn, prepared, "create_execution")
        return None

    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        r = self._one("get_execution", self._sql.get_execution, (execution_id,))
        return None if r is None else execution_from_row(r, self._decode_json)

    def list_executions(self, *, limit: int = 50, status: str | None = None) -> list[ExecutionRow]:
        if status is None:
            rows = self._all("list_executions", self._sql.list_executions, (limit,))
        else:
            rows = self._all("list_executions", self._sql.list_executions_by_status, (status, limit))
        load = self._decode_json
        return [execution_from_row(r, load) for r in rows]

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        prepared = PreparedBatch(batch, "write")
        with self._tx("write") as conn:
            self._apply(conn, prepared, "write")

    def renew_lease(self, execution_id: str, owner: str, expires_at: int) -> bool:
        return self._execute("renew_lease", self._sql.renew_lease, (expires_at, execution_id, owner)) == 1

    def get_result(self, execution_id: str) -> dict[str, Any] | None:
        r = self._one("get_result", self._sql.get_result, (execution_id,))
        return None if r is None else self._decode_json(r[0])

    # -- journal -----------------------------------------------------------------------------------------------
    def journal(self, execution_id: str | None = None, *, start: int = 0) -> Iterator[StoredJournalRecord]:
        sql = self._sql.journal if execution_id is None else self._sql.journal_of
        chunk = self.journal_chunk
        nxt = max(0, start)
        while True:
            params = (nxt, chunk) if execution_id is None else (execution_id, nxt, chunk)
            rows = self._all("journal read", sql, params)  # no lock or connection is held between chunks
            for r in rows:
                yield StoredJournalRecord(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])
            if len(rows) < chunk:
                return
            nxt = rows[-1][0] + 1

    def journal_tail(self, execution_id: str) -> tuple[int, str] | None:
        r = self._one("journal_tail", self._sql.journal_tail, (execution_id,))
        return None if r is None else (r[0], r[1])

    def journal_size(self) -> int:
        return self._one("journal_size", self._sql.journal_size)[0]

    def leaf_hashes(self, end: int | None = None) -> list[bytes]:
        if end is None:
            end = self.journal_size()
        out: list[bytes] = []
        while len(out) < end:
            rows = self._all("leaf_hashes", self._sql.leaf_hashes, (len(out), end, self.hash_chunk))
            if not rows:
                break
            for idx, h in rows:
                if idx != len(out):
                    raise StoreError(f"store leaf_hashes failed: the journal has no leaf {len(out)} (next is {idx})")
                out.append(bytes(h))
        return out

    # -- receipts ----------------------------------------------------------------------------------------------
    def find_receipt(self, idempotency_key: str) -> dict[str, Any] | None:
        r = self._one("find_receipt", self._sql.find_receipt, (idempotency_key,))
        return None if r is None else self._decode_json(r[0])

    def receipts(self, execution_id: str) -> list[dict[str, Any]]:
        load = self._decode_json
        return [load(r[0]) for r in self._all("receipts", self._sql.receipts, (execution_id,))]

    # -- outbox ------------------------------------------------------------------------------------------------
    def outbox_done(self, outbox_id: int, now: int) -> None:
        self._execute("outbox_done", self._sql.outbox_done, (now, outbox_id))

    def outbox_retry(self, outbox_id: int, next_at: int, error: str) -> None:
        self._execute("outbox_retry", self._sql.outbox_retry, (next_at, error, outbox_id))

    def outbox_pending(self) -> int:
        return self._one("outbox_pending", self._sql.outbox_pending)[0]

    # -- tokens ------------------------------------------------------------------------------------------------
    def put_token(self, row: TokenRow) -> None:
        params = token_params(row, "put_token")
        self._execute("put_token", self._sql.put_token, params)

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        r = self._one("token_by_hash", self._sql.token_by_hash, (token_hash,))
        return None if r is None else token_from_row(r, self._decode_json)

    def revoke_token(self, token_id: str) -> bool:
        return self._execute("revoke_token", self._sql.revoke_token, (token_id,)) == 1

    def list_tokens(self) -> list[TokenRow]:
        load = self._decode_json
        return [token_from_row(r, load) for r in self._all("list_tokens", self._sql.list_tokens)]

    # -- checkpoints -------------------------------------------------------------------------------------------
    def save_checkpoint(self, row: CheckpointRow) -> None:
        self._execute("save_checkpoint", self._sql.save_checkpoint,
                      (row.tree_size, bytes(row.root_hash), row.note, row.created_at))

    def latest_checkpoint(self) -> CheckpointRow | None:
        r = self._one("latest_checkpoint", self._sql.latest_checkpoint)
        return None if r is None else CheckpointRow(r[0], bytes(r[1]), r[2], r[3])

    def list_checkpoints(self) -> list[CheckpointRow]:
        return [CheckpointRow(r[0], bytes(r[1]), r[2], r[3]) for r in self._all("list_checkpoints", self._sql.list_checkpoints)]
