"""The one storage interface the engine, CLI and workers talk to (CONTRACT §5.8).

Two implementations stand behind it: :mod:`ordinance.store.sqlite` (the embedded
default) and :mod:`ordinance.store.postgres` (many workers on many machines).
Nothing outside ``ordinance.store`` may assume which one it has.

Writes that belong together go through :meth:`Store.write` as one :class:`WriteBatch`,
committed in a single transaction: that is how a step's completion and its
successor's start cost one durable commit.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXECUTION_STATES",
    "CheckpointRow",
    "ExecutionRow",
    "ExecutionUpdate",
    "JournalAppend",
    "LeaseLostError",
    "OutboxEvent",
    "PlanImmutableError",
    "Store",
    "StoreError",
    "StoredJournalRecord",
    "TokenRow",
    "WriteBatch",
]

#: queued → running → success | partial | failure
EXECUTION_STATES = ("queued", "running", "success", "partial", "failure")


class StoreError(Exception):
    """A storage fault (disk full, connection lost, corrupt schema). The message names the operation."""


class LeaseLostError(StoreError):
    """A write fenced by a lease that is no longer held (another executor's recovery took the execution over)."""

    def __init__(self, execution_id: str, owner: str, holder: str | None, status: str | None) -> None:
        super().__init__(
            f"lease on execution {execution_id} is no longer held by {owner} "
            f"(status {status or 'unknown'}, lease holder {holder or 'none'}): nothing was written"
        )
        self.execution_id, self.owner, self.holder, self.status = execution_id, owner, holder, status


class PlanImmutableError(StoreError):
    """A different body was offered under a registered plan id + version (R-PLAN-IMMUTABLE)."""

    def __init__(self, plan_id: str, version: int, registered_digest: str, offered_digest: str) -> None:
        super().__init__(
            f"plan {plan_id} version {version} is registered with digest {registered_digest}; "
            f"a different body ({offered_digest}) cannot be registered under the same id and version"
        )
        self.plan_id, self.version = plan_id, version
        self.registered_digest, self.offered_digest = registered_digest, offered_digest


@dataclass
class ExecutionRow:
    execution_id: str
    plan_id: str
    plan_version: int
    plan_digest: str
    run_id: str
    status: str  # one of EXECUTION_STATES
    created_at: int  # epoch ms
    updated_at: int
    context: dict[str, Any]  # the ExecutionContext document
    lease_owner: str | None = None
    lease_expires_at: int | None = None  # epoch ms
    parent_execution_id: str | None = None
    parent_step_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # e.g. workspace, authorization flag, for queued runs


@dataclass(frozen=True)
class JournalAppend:
    """A record to append. ``body`` is its canonical JSON without entry_hash (see ordinance.ledger.records)."""

    execution_id: str
    seq: int
    kind: str
    body: bytes
    entry_hash: str


@dataclass(frozen=True)
class StoredJournalRecord:
    leaf_index: int  # 0-based position in the store-wide Merkle log
    execution_id: str
    seq: int
    kind: str
    body: bytes
    entry_hash: str


@dataclass(frozen=True)
class ExecutionUpdate:
    execution_id: str
    status: str
    updated_at: int
    clear_lease: bool = False


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str  # the CloudEvent id
    execution_id: str
    event: dict[str, Any]  # the CloudEvent, structured JSON


@dataclass
class WriteBatch:
    """Everything one transaction writes. Empty parts cost nothing."""

    journal: list[JournalAppend] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)  # OperationReceipt documents (+ "output", "snapshot")
    #: (execution_id, PlanResult document — or its canonical JSON bytes, kept verbatim —, digest)
    results: list[tuple[str, dict[str, Any] | bytes, str]] = field(default_factory=list)
    updates: list[ExecutionUpdate] = field(default_factory=list)
    outbox: list[OutboxEvent] = field(default_factory=list)
    #: Fencing: (execution_id, owner). When set, the write happens only if that execution is running with that
    #: lease owner, checked inside the same transaction; otherwise LeaseLostError and nothing is written.
    lease: tuple[str, str] | None = None

    def __bool__(self) -> bool:
        return bool(self.journal or self.receipts or self.results or self.updates or self.outbox)


@dataclass
class TokenRow:
    token_id: str  # public, short id for revoke/list
    token_hash: str  # "sha256:..." of the secret; the secret itself is never stored
    user_id: str
    roles: list[str]
    scopes: list[str]
    created_at: int
    expires_at: int
    revoked: bool = False


@dataclass(frozen=True)
class CheckpointRow:
    tree_size: int
    root_hash: bytes
    note: str  # the signed note text
    created_at: int


class Store(abc.ABC):
    """Persistent state of Ordinance. All methods are thread-safe; every write is one transaction."""

    url: str

    # -- lifecycle -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def key_dir(self) -> str | None:
        """A directory beside the store for the signing key, or None (PostgreSQL: the caller chooses)."""

    # -- plan registry ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def register_plan(self, plan_id: str, version: int, digest: str, document: dict[str, Any]) -> bool:
        """Register a plan body; True if new, False if the same body was there. Raises PlanImmutableError."""

    @abc.abstractmethod
    def get_plan(self, plan_id: str, version: int) -> tuple[str, dict[str, Any]] | None:
        """(digest, document) of a registered plan."""

    # -- executions ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_execution(self, row: ExecutionRow, batch: WriteBatch | None = None) -> ExecutionRow | None:
        """Insert the execution (and the batch) atomically. Returns None if created, or the existing row
        if that execution id is already known (nothing is written then)."""

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> ExecutionRow | None: ...

    @abc.abstractmethod
    def list_executions(self, *, limit: int = 50, status: str | None = None) -> list[ExecutionRow]:
        """Newest first."""

    @abc.abstractmethod
    def write(self, batch: WriteBatch) -> None:
        """Commit everything in the batch in one transaction (journal leaf indices are assigned here).

        With ``batch.lease`` set, raises LeaseLostError (writing nothing) unless the execution is still running
        under that owner's lease: an executor that lost its lease can never overwrite what recovery decided.
        """

    @abc.abstractmethod
    def renew_lease(self, execution_id: str, owner: str, expires_at: int) -> bool:
        """Extend a running execution's lease; False if it is no longer ours or no longer running."""

    @abc.abstractmethod
    def claim_expired(self, now: int, owner: str, lease_ms: int, limit: int = 100) -> list[ExecutionRow]:
        """Atomically take over running executions whose lease expired before ``now`` (for recovery):
        each returned row now has lease_owner = owner. Two recoverers never get the same row."""

    @abc.abstractmethod
    def claim_queued(self, owner: str, now: int, lease_ms: int) -> ExecutionRow | None:
        """Atomically move the oldest queued execution to running with a lease for ``owner``."""

    @abc.abstractmethod
    def get_result(self, execution_id: str) -> dict[str, Any] | None:
        """The stored PlanResult document."""

    # -- journal ---------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def journal(self, execution_id: str | None = None, *, start: int = 0) -> Iterator[StoredJournalRecord]:
        """Records in leaf order (all, or one execution's), from leaf index ``start``."""

    @abc.abstractmethod
    def journal_tail(self, execution_id: str) -> tuple[int, str] | None:
        """(last seq, last entry_hash) of an execution's chain, or None if it has no record."""

    @abc.abstractmethod
    def journal_size(self) -> int:
        """Number of leaves in the store-wide log."""

    @abc.abstractmethod
    def leaf_hashes(self, end: int | None = None) -> list[bytes]:
        """RFC 6962 leaf hashes of leaves [0, end) in order."""

    # -- receipts (§7.1, §7.2) ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def find_receipt(self, idempotency_key: str) -> dict[str, Any] | None:
        """The newest succeeded receipt with this key (with its stored "output"), or None."""

    @abc.abstractmethod
    def receipts(self, execution_id: str) -> list[dict[str, Any]]: ...

    # -- outbox (§5.7) -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def outbox_claim(self, now: int, limit: int = 100) -> list[tuple[int, OutboxEvent, int]]:
        """Due, undelivered events: (outbox id, event, attempts so far). Claiming pushes their next try
        a little into the future so two workers rarely take the same one (delivery is at-least-once)."""

    @abc.abstractmethod
    def outbox_done(self, outbox_id: int, now: int) -> None: ...

    @abc.abstractmethod
    def outbox_retry(self, outbox_id: int, next_at: int, error: str) -> None: ...

    @abc.abstractmethod
    def outbox_pending(self) -> int: ...

    # -- tokens (§6.1) -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_token(self, row: TokenRow) -> None: ...

    @abc.abstractmethod
    def token_by_hash(self, token_hash: str) -> TokenRow | None: ...

    @abc.abstractmethod
    def revoke_token(self, token_id: str) -> bool: ...

    @abc.abstractmethod
    def list_tokens(self) -> list[TokenRow]: ...

    # -- checkpoints (§8) --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def save_checkpoint(self, row: CheckpointRow) -> None: ...

    @abc.abstractmethod
    def latest_checkpoint(self) -> CheckpointRow | None: ...

    @abc.abstractmethod
    def list_checkpoints(self) -> list[CheckpointRow]:
        """Every stored checkpoint, smallest tree first (ties: oldest first)."""


def open_store(url: str | None = None, *, create: bool = True, **options: Any) -> Store:
    """Open a store by URL: ``sqlite:///path``, a plain file path, or ``postgresql://…``.

    Without a URL: ``$ORDINANCE_STORE``, else ``.ordinance/ordinance.db`` under the current directory.
    ``create=False`` refuses a SQLite file that does not exist yet (StoreError) rather than creating an empty store:
    for commands that only read. (A PostgreSQL database exists or the connection fails either way.)
    """
    import os

    url = url or os.environ.get("ORDINANCE_STORE") or os.path.join(".ordinance", "ordinance.db")
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, **options)
    from .sqlite import SQLiteStore

    return SQLiteStore(url, create=create, **options)
