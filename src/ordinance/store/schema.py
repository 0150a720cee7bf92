"""The store's versioned schema: migrations in code, the same logical tables on SQLite and PostgreSQL (§5.8).

Every store keeps a ``schema_version`` table with one row per applied migration. On open, a store applies the
migrations it is missing, in order, in one transaction (DDL is transactional on both backends, so a failed
upgrade leaves the previous version intact). A store written by a newer Ordinance (a version this code does not
know) is refused with :class:`~ordinance.store.base.StoreError` rather than touched.

Never edit a migration that has shipped: append a new one with the next version number.

Tables (both backends; SQLite types in brackets where they differ):

- ``plans``        (plan_id, version) → digest, document JSON, registered_at.          R-PLAN-IMMUTABLE
- ``executions``   one row per execution_id: plan, run_id, status, context/options JSON, lease, parents.
- ``results``      execution_id → PlanResult document JSON and its digest (written once).
- ``journal``      leaf_index (0-based, gap-free, store-wide) → execution_id, seq, kind, body BYTEA [BLOB],
                   entry_hash, leaf_hash = sha256(0x00 ‖ body) (RFC 6962). UNIQUE (execution_id, seq).   §8
- ``receipts``     operation_id → execution_id, step_id, attempt, idempotency_key, status, document JSON.  §7.1
                   Insertion order (PostgreSQL: identity column ``n``; SQLite: the implicit rowid) is "newest".
- ``outbox``       id (autoincrement) → event_id, execution_id, event JSON, attempts, next_at, delivered_at,
                   last_error.                                                                             §5.7
- ``tokens``       token_id → token_hash (UNIQUE), user_id, roles/scopes JSON, created_at, expires_at,
                   revoked.                                                                                §6.1
- ``checkpoints``  id → tree_size, root_hash BYTEA [BLOB], note, created_at.                               §8
- ``ledger_head``  PostgreSQL only: the single counter row whose row lock serialises journal appends, so leaf
                   indices are gap-free and in commit order across concurrent writers. (SQLite needs none: its
                   ``BEGIN IMMEDIATE`` write lock already serialises writers.)

JSON documents are stored as text (SQLite ``TEXT``, PostgreSQL ``json``, which keeps the text verbatim and, unlike
``jsonb``, accepts the escaped NUL character ``\\u0000``).
"""

from __future__ import annotations

import hashlib as _hashlib
import json as _json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..contract.canonical import canonical_bytes
from .base import (
    EXECUTION_STATES,
    ExecutionRow,
    JournalAppend,
    OutboxEvent,
    StoreError,
    TokenRow,
    WriteBatch,
)

__all__ = ["MIGRATIONS", "Migration", "latest_version", "pending_migrations"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


_STATES = ", ".join(f"'{s}'" for s in EXECUTION_STATES)

_SQLITE_V1 = (
    """CREATE TABLE plans (
        plan_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        digest TEXT NOT NULL,
        document TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        PRIMARY KEY (plan_id, version)
    )""",
    f"""CREATE TABLE executions (
        execution_id TEXT PRIMARY KEY,
        plan_id TEXT NOT NULL,
        plan_version INTEGER NOT NULL,
        plan_digest TEXT NOT NULL,
        run_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({_STATES})),
        context TEXT NOT NULL,
        options TEXT NOT NULL,
        lease_owner TEXT,
        lease_expires_at INTEGER,
        parent_execution_id TEXT,
        parent_step_id TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )""",
    "CREATE INDEX executions_queue ON executions (status, created_at, execution_id)",
    "CREATE INDEX executions_lease ON executions (status, lease_expires_at)",
    "CREATE INDEX executions_created ON executions (created_at, execution_id)",
    "CREATE INDEX executions_parent ON executions (parent_execution_id)",
    """CREATE TABLE results (
        execution_id TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        digest TEXT NOT NULL
    )""",
    """CREATE TABLE journal (
        leaf_index INTEGER PRIMARY KEY CHECK (leaf_index >= 0),
        execution_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        body BLOB NOT NULL,
        entry_hash TEXT NOT NULL,
        leaf_hash BLOB NOT NULL,
        UNIQUE (execution_id, seq)
    )""",
    "CREATE INDEX journal_execution ON journal (execution_id, leaf_index)",
    """CREATE TABLE receipts (
        operation_id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        idempotency_key TEXT,
        status TEXT NOT NULL,
        document TEXT NOT NULL
    )""",
    "CREATE INDEX receipts_key ON receipts (idempotency_key, status)",
    "CREATE INDEX receipts_execution ON receipts (execution_id)",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        event TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL DEFAULT 0,
        delivered_at INTEGER,
        last_error TEXT
    )""",
    "CREATE INDEX outbox_due ON outbox (next_at, id) WHERE delivered_at IS NULL",
    """CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        roles TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tree_size INTEGER NOT NULL,
        root_hash BLOB NOT NULL,
        note TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    "CREATE INDEX checkpoints_size ON checkpoints (tree_size, id)",
)

_POSTGRES_V1 = (
    """CREATE TABLE plans (
        plan_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        digest TEXT NOT NULL,
        document JSON NOT NULL,
        registered_at BIGINT NOT NULL,
        PRIMARY KEY (plan_id, version)
    )""",
    f"""CREATE TABLE executions (
        execution_id TEXT PRIMARY KEY,
        plan_id TEXT NOT NULL,
        plan_version BIGINT NOT NULL,
        plan_digest TEXT NOT NULL,
        run_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({_STATES})),
        context JSON NOT NULL,
        options JSON NOT NULL,
        lease_owner TEXT,
        lease_expires_at BIGINT,
        parent_execution_id TEXT,
        parent_step_id TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
    "CREATE INDEX executions_queue ON executions (status, created_at, execution_id)",
    "CREATE INDEX executions_lease ON executions (status, lease_expires_at)",
    "CREATE INDEX executions_created ON executions (created_at, execution_id)",
    "CREATE INDEX executions_parent ON executions (parent_execution_id)",
    """CREATE TABLE results (
        execution_id TEXT PRIMARY KEY,
        document JSON NOT NULL,
        digest TEXT NOT NULL
    )""",
    """CREATE TABLE journal (
        leaf_index BIGINT PRIMARY KEY CHECK (leaf_index >= 0),
        execution_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        body BYTEA NOT NULL,
        entry_hash TEXT NOT NULL,
        leaf_hash BYTEA NOT NULL,
        UNIQUE (execution_id, seq)
    )""",
    "CREATE INDEX journal_execution ON journal (execution_id, leaf_index)",
    """CREATE TABLE ledger_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        size BIGINT NOT NULL CHECK (size >= 0)
    )""",
    "INSERT INTO ledger_head (id, size) VALUES (1, 0)",
    """CREATE TABLE receipts (
        operation_id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        idempotency_key TEXT,
        status TEXT NOT NULL,
        document JSON NOT NULL,
        n BIGINT GENERATED ALWAYS AS IDENTITY
    )""",
    "CREATE INDEX receipts_key ON receipts (idempotency_key, status)",
    "CREATE INDEX receipts_execution ON receipts (execution_id)",
    """CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        event JSON NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at BIGINT NOT NULL DEFAULT 0,
        delivered_at BIGINT,
        last_error TEXT
    )""",
    "CREATE INDEX outbox_due ON outbox (next_at, id) WHERE delivered_at IS NULL",
    """CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        roles JSON NOT NULL,
        scopes JSON NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    )""",
    """CREATE TABLE checkpoints (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tree_size BIGINT NOT NULL,
        root_hash BYTEA NOT NULL,
        note TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )""",
    "CREATE INDEX checkpoints_size ON checkpoints (tree_size, id)",
)

#: Applied in order. Append only.
_DROP_REDUNDANT_JOURNAL_INDEX = ("DROP INDEX IF EXISTS journal_execution",)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: plans, executions, results, journal, receipts, outbox, tokens, checkpoints",
              _SQLITE_V1, _POSTGRES_V1),
    # One b-tree less to write per step: UNIQUE (execution_id, seq) serves one execution's records in the same
    # order (an execution's records get leaf indices in seq order).
    Migration(2, "drop journal (execution_id, leaf_index): UNIQUE (execution_id, seq) serves per-execution reads",
              _DROP_REDUNDANT_JOURNAL_INDEX, _DROP_REDUNDANT_JOURNAL_INDEX),
)

#: Created (if missing) before any migration runs; its rows record the applied versions.
SCHEMA_VERSION_DDL = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)"""


def latest_version(migrations: tuple[Migration, ...] | None = None) -> int:
    migrations = MIGRATIONS if migrations is None else migrations
    return migrations[-1].version if migrations else 0


def pending_migrations(current: int | None, where: str) -> list[Migration]:
    """The migrations a store at version ``current`` (None/0: empty) still needs, in order.

    Raises StoreError if the store was written by a newer Ordinance than this one.
    """
    migrations = MIGRATIONS
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise StoreError("store open failed: the migration list is not strictly increasing (a bug in Ordinance)")
    current = current or 0
    latest = latest_version(migrations)
    if current > latest:
        raise StoreError(
            f"store open failed: {where} has schema version {current}, but this Ordinance supports versions up to "
            f"{latest}; it was written by a newer Ordinance. Upgrade Ordinance to open it (nothing was changed)."
        )
    return [m for m in migrations if m.version > current]


# -- row mapping shared by both backends -----------------------------------------------------------------------

EXECUTION_COLUMNS = (
    "execution_id", "plan_id", "plan_version", "plan_digest", "run_id", "status", "created_at", "updated_at",
    "context", "options", "lease_owner", "lease_expires_at", "parent_execution_id", "parent_step_id",
)
EXECUTION_SELECT = ", ".join(EXECUTION_COLUMNS)
RECEIPT_COLUMNS = ("operation_id", "execution_id", "step_id", "attempt", "idempotency_key", "status", "document")
TOKEN_COLUMNS = ("token_id", "token_hash", "user_id", "roles", "scopes", "created_at", "expires_at", "revoked")
TOKEN_SELECT = ", ".join(TOKEN_COLUMNS)
JOURNAL_COLUMNS = ("leaf_index", "execution_id", "seq", "kind", "body", "entry_hash", "leaf_hash")

_encoder = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

#: How long (ms) an outbox claim keeps an event away from other deliverers.
OUTBOX_CLAIM_MS = 30_000


def dumps(obj: Any, what: str, op: str) -> str:
    """JSON text for storage (compact, UTF-8 safe, no NaN). A document that is not JSON is a StoreError.

    Storage needs valid JSON, not canonical JSON: the canonical fast path (orjson for float-free documents) is
    used for its speed, and the standard encoder for everything else.
    """
    try:
        return canonical_bytes(obj).decode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"store {op} failed: {what} is not a JSON document: {exc}") from exc


def _result_text(doc: dict[str, Any] | bytes, op: str) -> str:
    """A result as stored: a document is encoded; canonical bytes the engine already made are kept as they are."""
    if isinstance(doc, (bytes, bytearray)):
        try:
            return bytes(doc).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(f"store {op} failed: a result document is not UTF-8: {exc}") from exc
    return dumps(doc, "a result document", op)


def leaf_hash(body: bytes) -> bytes:
    """RFC 6962 leaf hash: sha256(0x00 ‖ body)."""
    return _hashlib.sha256(b"\x00" + body).digest()


def execution_params(row: ExecutionRow, op: str) -> tuple[Any, ...]:
    return (
        row.execution_id, row.plan_id, row.plan_version, row.plan_digest, row.run_id, row.status,
        row.created_at, row.updated_at, dumps(row.context, "the execution context", op),
        dumps(row.options or {}, "the execution options", op), row.lease_owner, row.lease_expires_at,
        row.parent_execution_id, row.parent_step_id,
    )


def execution_from_row(r: Any, load: Callable[[Any], Any]) -> ExecutionRow:
    return ExecutionRow(
        execution_id=r[0], plan_id=r[1], plan_version=r[2], plan_digest=r[3], run_id=r[4], status=r[5],
        created_at=r[6], updated_at=r[7], context=load(r[8]), options=load(r[9]), lease_owner=r[10],
        lease_expires_at=r[11], parent_execution_id=r[12], parent_step_id=r[13],
    )


def journal_params(records: list[JournalAppend], first_leaf: int) -> list[tuple[Any, ...]]:
    out = []
    for i, rec in enumerate(records):
        body = bytes(rec.body)
        out.append((first_leaf + i, rec.execution_id, rec.seq, rec.kind, body, rec.entry_hash, leaf_hash(body)))
    return out


def check_journal(records: list[JournalAppend], op: str) -> None:
    for rec in records:
        if not isinstance(rec.body, (bytes, bytearray, memoryview)):
            raise StoreError(f"store {op} failed: journal record body must be bytes, not {type(rec.body).__name__}")


def receipt_params(doc: dict[str, Any], op: str) -> tuple[Any, ...]:
    if not isinstance(doc, dict):
        raise StoreError(f"store {op} failed: a receipt must be a JSON object, not {type(doc).__name__}")
    missing = [k for k in RECEIPT_COLUMNS[:-1] if k not in doc]
    if missing:
        raise StoreError(f"store {op} failed: receipt {doc.get('operation_id')!r} lacks {', '.join(missing)}")
    return (
        doc["operation_id"], doc["execution_id"], doc["step_id"], doc["attempt"], doc["idempotency_key"],
        doc["status"], dumps(doc, "a receipt", op),
    )


def outbox_params(ev: OutboxEvent, op: str) -> tuple[Any, ...]:
    return (ev.event_id, ev.execution_id, dumps(ev.event, "an outbox event", op))


def token_params(row: TokenRow, op: str) -> tuple[Any, ...]:
    return (
        row.token_id, row.token_hash, row.user_id, dumps(list(row.roles), "token roles", op),
        dumps(list(row.scopes), "token scopes", op), row.created_at, row.expires_at, bool(row.revoked),
    )


def token_from_row(r: Any, load: Callable[[Any], Any]) -> TokenRow:
    return TokenRow(
        token_id=r[0], token_hash=r[1], user_id=r[2], roles=list(load(r[3])), scopes=list(load(r[4])),
        created_at=r[5], expires_at=r[6], revoked=bool(r[7]),
    )


class PreparedBatch:
    """A WriteBatch turned into statement parameters before any lock or connection is taken (both backends).

    ``journal`` rows lack only their leaf index, which the backend assigns inside the transaction.
    """

    __slots__ = ("journal", "lease", "outbox", "receipts", "results", "updates")

    def __init__(self, batch: WriteBatch | None, op: str) -> None:
        batch = batch or WriteBatch()
        self.lease = batch.lease
        self.updates = [
            (u.status, u.updated_at, u.clear_lease, u.clear_lease, u.execution_id) for u in batch.updates
        ]
        check_journal(batch.journal, op)
        self.journal = []
        for rec in batch.journal:
            body = bytes(rec.body)
            self.journal.append((rec.execution_id, rec.seq, rec.kind, body, rec.entry_hash, leaf_hash(body)))
        self.receipts = [receipt_params(doc, op) for doc in batch.receipts]
        self.results = [(eid, _result_text(doc, op), digest) for eid, doc, digest in batch.results]
        self.outbox = [outbox_params(ev, op) for ev in batch.outbox]


def now_ms() -> int:
    return time.time_ns() // 1_000_000
