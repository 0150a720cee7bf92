"""The journal ledger over a store (§8): checkpoints, verification, inclusion proofs and export bundles.

The pure modules of :mod:`ordinance.ledger` know nothing about databases; this one wires them to a
:class:`~ordinance.store.base.Store`:

* :func:`checkpoint` signs the store's current tree as a C2SP tlog-checkpoint and stores the note.
  It refuses to sign a log that no longer extends the previous checkpoint, and re-derives the leaf
  hash of every record added since from its body, so a checkpoint never vouches for a silently
  edited leaf-hash index.
* :func:`verify_store` streams the whole journal through the record checks of
  :func:`~ordinance.ledger.verify.verify_scanned` (entry hashes, chains, leaf order, Merkle tree)
  against the latest *signed* checkpoint, with every other stored checkpoint as an anchor, the
  terminal executions (which must end with ``execution.result``), the stored PlanResult digests,
  and optionally an older checkpoint kept elsewhere (``since``: an RFC 9162 consistency check that
  catches truncation and rewritten history even if the store's own checkpoints were replaced).
  ``execution_id=`` checks one execution quickly instead.
* :func:`prove` and :func:`export_bundle` give inclusion proofs / an offline bundle of one
  execution's records against a signed checkpoint (made on demand when none covers them).

Every failure is a :class:`~ordinance.ledger.verify.Problem` naming the first bad record
(leaf index, execution id, seq, reason).  How precisely a change that only the tree can see (a
reordering across executions, a self-consistent forged execution) is located depends on how many
checkpoints the store has: see :func:`check_log`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .bundle import build_bundle
from .merkle import MerkleTree, ProofError, verify_inclusion
from .note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    open_checkpoint,
    sign_checkpoint,
)
from .records import (
    RESULT_KIND,
    ZERO_HASH,
    RecordError,
    digest,
    loads,
    record_leaf_hash,
)
from .verify import (
    Chains,
    ConsistencyReport,
    Problem,
    ScannedRecord,
    VerifyReport,
    chain_step,
    incomplete,
    locate_divergence,
    scan_record,
    sort_problems,
    verify_consistency_with,
    verify_scanned,
)

__all__ = [
    "PARALLEL_CHUNK_MIN",
    "PARALLEL_MIN_RECORDS",
    "TERMINAL_STATES",
    "LedgerError",
    "LedgerReport",
    "MissingKeyError",
    "UnknownExecutionError",
    "VerifyContext",
    "check_log",
    "checkpoint",
    "covering_checkpoint",
    "default_workers",
    "document_digest",
    "export_bundle",
    "export_records",
    "list_checkpoints",
    "load_context",
    "prove",
    "scan_store",
    "verify_store",
]

TERMINAL_STATES = ("success", "partial", "failure")
"""Execution row states after which the execution's journal must end with ``execution.result``."""

PARALLEL_MIN_RECORDS = 40_000
"""Below this many records, verification scans in-process (starting workers costs more than it saves)."""

PARALLEL_CHUNK_MIN = 5_000
"""Smallest leaf range one worker process checks at a time."""

_ALL = 2**62  # "no limit" for list_executions


class LedgerError(Exception):
    """The ledger refuses an operation because the journal or its checkpoints are not trustworthy."""


class UnknownExecutionError(LedgerError):
    """No execution row and no journal record has this id."""


class MissingKeyError(LedgerError):
    """Checkpoints must be checked but there is no key to check them with."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------------------------------------------
# checkpoints in the store
# --------------------------------------------------------------------------------------------------------------


def sign_current_tree(store: Any) -> tuple[str, Checkpoint]:
    """The engine's own checkpoint (§8): load (or make, on first use) the log's key and sign the current tree.

    Nothing new is stored when the log has not grown since the latest checkpoint. Raises LedgerError,
    SigningKeyError or StoreError; callers that sign as a courtesy after a run report those and go on.
    """
    from .keys import load_signer

    return checkpoint(store, load_signer(store).signer)


def list_checkpoints(store: Any) -> list[Any]:
    """Every checkpoint row of the store, smallest tree first (ties: oldest first)."""
    return list(store.list_checkpoints())


def _open(note: str, verifier: Verifier) -> Checkpoint:
    return open_checkpoint(note, verifier, origin=verifier.name)


def checkpoint(store: Any, signer: Signer, *, now: int | None = None) -> tuple[str, Checkpoint]:
    """Sign the store's current tree, save the note, and return ``(note, checkpoint)``.

    The root is computed over the store's leaf-hash index.  Before signing, the log must extend the
    latest stored checkpoint (its root reproduced at its size), and every record added since must
    hash to its indexed leaf hash and ``entry_hash``; otherwise :class:`LedgerError` (nothing is
    signed: run ``ordinance journal verify``).  When the log has not grown since the latest checkpoint
    and that one is this key's, its note is returned and nothing new is stored.
    """
    from ..store.base import CheckpointRow, StoreError

    latest = store.latest_checkpoint()
    old: Checkpoint | None = None
    if latest is not None:
        try:
            old = _open(latest.note, signer.verifier)
        except NoteError as exc:
            raise LedgerError(
                f"the store's latest checkpoint (tree size {latest.tree_size}) does not verify with this log's key "
                f"{signer.verifier.to_key()}: {exc}; run 'ordinance journal verify'"
            ) from None
    try:
        hashes = store.leaf_hashes()
    except StoreError as exc:
        raise LedgerError(f"cannot read the journal's leaf hashes: {exc}") from None
    n = len(hashes)
    tree = MerkleTree(hashes)
    start = 0
    if old is not None:
        if n < old.tree_size:
            raise LedgerError(
                f"the journal has {n} records but the last checkpoint covers {old.tree_size}: it was truncated; "
                "refusing to sign (run 'ordinance journal verify')"
            )
        if tree.root(old.tree_size) != old.root_hash:
            raise LedgerError(
                f"the journal no longer extends the last checkpoint (size {old.tree_size}): history was rewritten; "
                "refusing to sign (run 'ordinance journal verify')"
            )
        if n == old.tree_size:
            return latest.note, old
        start = old.tree_size
    expected = start
    for rec in store.journal(start=start):
        li = rec.leaf_index
        if li >= n:
            break
        if li != expected:
            raise LedgerError(f"the journal has no leaf {expected} (next is {li}); refusing to sign")
        if record_leaf_hash(rec.body) != hashes[li]:
            raise LedgerError(f"leaf {li}: the record body does not hash to its indexed leaf hash; refusing to sign")
        if digest(rec.body) != rec.entry_hash:
            raise LedgerError(f"leaf {li}: entry_hash does not match the record body; refusing to sign")
        expected += 1
    if expected != n:
        raise LedgerError(f"the journal has no leaf {expected}; refusing to sign")
    cp = Checkpoint(signer.name, n, tree.root())
    note = sign_checkpoint(cp, signer)
    store.save_checkpoint(CheckpointRow(n, cp.root_hash, note, _now_ms() if now is None else now))
    return note, cp


# --------------------------------------------------------------------------------------------------------------
# verification context: what the store knows besides the records
# --------------------------------------------------------------------------------------------------------------


@dataclass
class VerifyContext:
    """Everything :func:`check_log` compares the records with.

    ``checkpoint`` is the latest checkpoint whose signature verified; ``anchors`` every verified
    checkpoint (``checkpoint`` included), smallest first.  ``completed`` / ``known`` are the ids of
    terminal / all execution rows (``None``: unknown, not checked).  ``result_digest(eid)`` gives the
    digest of the stored PlanResult.  ``committed_leaves(size)`` gives the store's leaf-hash index
    (a hint: trusted only if it reproduces the signed root).  ``since`` is an older trusted
    checkpoint the log must extend.
    """

    verifier: Verifier | None = None
    checkpoint: Checkpoint | None = None
    checkpoint_note: str | None = None
    anchors: list[Checkpoint] = field(default_factory=list)
    checkpoints_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    completed: set[str] | None = None
    known: set[str] | None = None
    result_digest: Callable[[str, str | None], str | None] | None = None
    committed_leaves: Callable[[int], Sequence[bytes] | None] | None = None
    since: Checkpoint | None = None
    has_execution: Callable[[str], bool] | None = None


def document_digest(doc: Any, expected: str | None = None) -> str:
    """§0.2 digest of a JSON document; fast when it is the ``expected`` one.

    orjson's sorted compact output is tried first: if it hashes to ``expected`` it *is* the canonical
    form (the digest fixes the bytes, and those bytes fix the document).  Otherwise the standard
    library's canonical JSON decides.
    """
    if expected is not None:
        try:
            import orjson

            if "sha256:" + hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest() == expected:
                return expected
        except (ImportError, TypeError, ValueError):
            pass
    from ..contract.canonical import digest as doc_digest

    return doc_digest(doc)


def _recorded_result_digest(body: bytes) -> str | None:
    """``data.result_digest`` of an ``execution.result`` record body, if it is a string."""
    try:
        data = loads(body).get("data")
    except (ValueError, AttributeError):
        return None
    want = data.get("result_digest") if isinstance(data, dict) else None
    return want if isinstance(want, str) else None


def _checkpoint_problems(rows: Sequence[Any], verifier: Verifier) -> tuple[list[Checkpoint], list[Problem]]:
    good: list[Checkpoint] = []
    problems: list[Problem] = []
    by_size: dict[int, Checkpoint] = {}
    for row in rows:
        try:
            cp = _open(row.note, verifier)
        except NoteError as exc:
            problems.append(Problem(f"stored checkpoint of tree size {row.tree_size} is not valid: {exc}"))
            continue
        if cp.tree_size != row.tree_size or cp.root_hash != bytes(row.root_hash):
            problems.append(
                Problem(
                    f"stored checkpoint row (tree size {row.tree_size}) disagrees with its signed note "
                    f"(tree size {cp.tree_size}): the checkpoints table was edited"
                )
            )
        seen = by_size.get(cp.tree_size)
        if seen is not None and seen.root_hash != cp.root_hash:
            problems.append(
                Problem(f"two signed checkpoints of tree size {cp.tree_size} have different roots: the log forked")
            )
            continue
        by_size[cp.tree_size] = cp
        good.append(cp)
    good.sort(key=lambda c: c.tree_size)
    return good, problems


def load_context(
    store: Any, verifier: Verifier | None, *, since_note: str | None = None, executions: bool = True
) -> VerifyContext:
    """Read the store's checkpoints (checking each signature), execution rows and result digests.

    ``executions=False`` skips reading every execution row (checking one execution does not need them).

    Raises :class:`MissingKeyError` when checkpoints exist (or ``since_note`` is given) but
    ``verifier`` is ``None``.
    """
    rows = list_checkpoints(store)
    if verifier is None and (rows or since_note is not None):
        raise MissingKeyError(
            f"the store has {len(rows)} signed checkpoint(s) but there is no key to check them"
            if rows
            else "--since needs the log's key to check the checkpoint"
        )
    ctx = VerifyContext(verifier=verifier, checkpoints_checked=len(rows))
    if verifier is not None and rows:
        ctx.anchors, ctx.problems = _checkpoint_problems(rows, verifier)
        if ctx.anchors:
            ctx.checkpoint = ctx.anchors[-1]
            for row in reversed(rows):
                if row.tree_size == ctx.checkpoint.tree_size:
                    ctx.checkpoint_note = row.note
                    break
    if since_note is not None:
        assert verifier is not None
        try:
            ctx.since = _open(since_note, verifier)
        except NoteError as exc:
            ctx.problems.append(Problem(f"the --since checkpoint is not valid for this log: {exc}"))
    if executions:
        execs = store.list_executions(limit=_ALL)
        ctx.known = {r.execution_id for r in execs}
        ctx.completed = {r.execution_id for r in execs if r.status in TERMINAL_STATES}
        # an execution created after the rows were read may have records in the scan: look it up then
        ctx.has_execution = lambda eid: store.get_execution(eid) is not None

    def result_digest(eid: str, expected: str | None = None) -> str | None:
        doc = store.get_result(eid)
        return None if doc is None else document_digest(doc, expected)

    ctx.result_digest = result_digest

    def committed(size: int) -> Sequence[bytes] | None:
        from ..store.base import StoreError

        try:
            hashes = store.leaf_hashes(size)
        except StoreError:
            return None
        return hashes if len(hashes) == size else None

    ctx.committed_leaves = committed
    return ctx


# --------------------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------------------


@dataclass
class LedgerReport:
    """Outcome of :func:`verify_store` / :func:`check_log`.  ``problems`` sorted: by leaf, log-wide last."""

    ok: bool
    scope: str  # "store" or "execution"
    records_checked: int
    executions: int
    tree_size: int
    root_hash: bytes
    checkpoint: Checkpoint | None = None
    checkpoint_status: str = "none"  # none | ok | failed
    checkpoints_checked: int = 0
    results_checked: int = 0
    since: ConsistencyReport | None = None
    problems: list[Problem] = field(default_factory=list)
    problems_omitted: int = 0
    execution_id: str | None = None
    elapsed_s: float = 0.0
    uncovered: int = 0  # records past the latest checkpoint

    @property
    def first_bad(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def rate(self) -> float:
        return self.records_checked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        if self.ok:
            cp = (
                f", checkpoint at size {self.checkpoint.tree_size} matches"
                if self.checkpoint is not None
                else ", no checkpoint yet"
            )
            return f"OK: {self.records_checked} records in {self.executions} executions, tree size {self.tree_size}{cp}"
        more = len(self.problems) - 1 + self.problems_omitted
        return f"TAMPERED: {self.first_bad}" + (f" (and {more} more finding(s))" if more > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scope": self.scope,
            "execution_id": self.execution_id,
            "records_checked": self.records_checked,
            "executions": self.executions,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint is not None else None,
            "checkpoint_status": self.checkpoint_status,
            "checkpoints_checked": self.checkpoints_checked,
            "uncovered_records": self.uncovered,
            "results_checked": self.results_checked,
            "since": self.since.to_dict() if self.since is not None else None,
            "first_bad": self.first_bad.to_dict() if self.first_bad is not None else None,
            "problems": [p.to_dict() for p in self.problems],
            "problems_omitted": self.problems_omitted,
            "elapsed_ms": round(self.elapsed_s * 1000, 3),
            "records_per_second": round(self.rate),
        }


# --------------------------------------------------------------------------------------------------------------
# scanning the store (optionally in worker processes)
# --------------------------------------------------------------------------------------------------------------


def scan_store(store: Any) -> Iterator[ScannedRecord]:
    """Every journal record of ``store`` in leaf order, hashed and parsed (:class:`ScannedRecord`)."""
    return map(scan_record, store.journal())  # type: ignore[arg-type]


# The parallel pass.  Each worker process opens the store itself, reads one range of leaves, and checks
# everything that range can show on its own: leaf order, entry hashes, bodies, each execution's chain
# *inside* the range.  It sends back only the range's leaf hashes (32 bytes each), the first record of
# every execution it saw (its "head") and the chain state after its last one (its "tail").  The parent
# stitches the heads onto the tails of the ranges before.  This is only a fast way to say "all good":
# as soon as anything does not line up, the caller verifies sequentially, which names the problems.

_W_STORE: Any = None


def _worker_init(url: str) -> None:  # pragma: no cover - runs in worker processes
    global _W_STORE
    from ..store import open_store

    _W_STORE = open_store(url)


def _worker_range(start: int, end: int | None) -> dict[str, Any] | None:  # pragma: no cover - worker side
    """Check leaves ``[start, end)``; ``None`` as soon as something is wrong (the parent then re-verifies)."""
    leaves: list[bytes] = []
    append = leaves.append
    heads: list[tuple[int, str, int, str]] = []
    chains: dict[str, list[Any]] = {}
    results: dict[str, tuple[int, str, str | None]] = {}
    expected = start
    for rec in _W_STORE.journal(start=start):
        li = rec.leaf_index
        if end is not None and li >= end:
            break
        if li != expected:
            return None
        expected += 1
        s = scan_record(rec)  # type: ignore[arg-type]
        h = s.header
        if not s.hash_ok or h is None:
            return None
        eid, seq, kind, prev = h
        if eid != rec.execution_id or seq != rec.seq or kind != rec.kind:
            return None
        append(s.leaf_hash)
        st = chains.get(eid)
        if st is None:
            heads.append((li, eid, seq, prev))
            chains[eid] = [seq + 1, rec.entry_hash, kind, li]
        else:
            if st[2] == RESULT_KIND or seq != st[0] or prev != st[1]:
                return None
            st[0], st[1], st[2], st[3] = seq + 1, rec.entry_hash, kind, li
        if kind == RESULT_KIND:
            want = _recorded_result_digest(rec.body)
            if want is not None:  # the PlanResult check, done here to spare the parent the documents
                doc = _W_STORE.get_result(eid)
                results[eid] = (li, want, None if doc is None else document_digest(doc, want))
    if end is not None and expected != end:
        return None
    return {"start": start, "stop": expected, "leaves": b"".join(leaves), "heads": heads, "tails": chains,
            "results": results}


def _can_fork(store: Any) -> bool:
    """Fork workers only from a single-threaded process over SQLite.

    A forked child inherits the parent's open connections; a PostgreSQL connection finalised in the child
    would end the parent's session, so PostgreSQL workers are spawned (slower to start, always safe).
    """
    import multiprocessing

    from ..store.sqlite import SQLiteStore

    return (
        type(store) is SQLiteStore
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


def _parallel_url(store: Any) -> str | None:
    """The URL workers can reopen, or ``None`` when this store cannot be shared with other processes."""
    from ..store.postgres import PostgresStore
    from ..store.sqlite import SQLiteStore

    if type(store) is SQLiteStore:
        return None if store.path == ":memory:" else store.url
    if type(store) is PostgresStore:
        return store.url
    return None


def default_workers() -> int:
    """Worker processes for a large verification: ``$ORDINANCE_VERIFY_WORKERS`` or the CPU count (at most 8)."""
    env = os.environ.get("ORDINANCE_VERIFY_WORKERS")
    if env and env.isdigit():
        return max(1, int(env))
    return max(1, min(8, os.cpu_count() or 1))


def _parallel_pass(store: Any, ctx: VerifyContext, workers: int, size: int) -> tuple[VerifyReport, _Capture] | None:
    """The all-good verdict of :func:`verify_scanned` computed by worker processes, or ``None``.

    ``None`` means "not shown to be all good" (a problem, or the store cannot be shared): verify
    sequentially then.  Records appended while the workers run are included, as in a sequential pass.
    """
    url = _parallel_url(store)
    if url is None or workers < 2 or size < 2:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(PARALLEL_CHUNK_MIN, -(-size // (workers * 4)))
    starts = list(range(0, size, chunk))
    tasks = [(a, a + chunk) for a in starts[:-1]] + [(starts[-1], None)]
    mp = multiprocessing.get_context("fork" if _can_fork(store) else "spawn")
    cap = _Capture()
    chains: Chains = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp, initializer=_worker_init, initargs=(url,)) as pool:
        futures = [pool.submit(_worker_range, a, b) for a, b in tasks]
        try:
            for fut in futures:
                part = fut.result()
                if part is None:
                    return None
                for li, eid, seq, prev in part["heads"]:
                    st = chains.get(eid)
                    if st is None:
                        if seq != 0 or prev != ZERO_HASH:
                            return None
                        cap.first_leaf[eid] = li
                    elif st[2] == RESULT_KIND or seq != st[0] or prev != st[1]:
                        return None
                chains.update(part["tails"])
                blob = part["leaves"]
                cap.leaves.extend([blob[i : i + 32] for i in range(0, len(blob), 32)])
                cap.checked.update(part["results"])
        finally:
            for fut in futures:
                fut.cancel()
    n = len(cap.leaves)
    tree = MerkleTree(cap.leaves)
    cp = ctx.checkpoint
    if cp is not None and (n < cp.tree_size or tree.root(cp.tree_size) != cp.root_hash):
        return None
    for eid in ctx.completed or ():
        if incomplete(chains, eid) is not None:
            return None
    base = VerifyReport(True, n, len(chains), n, tree.root(), [], 0, cp)
    cap.tree = tree
    return base, cap


# --------------------------------------------------------------------------------------------------------------
# checking a log
# --------------------------------------------------------------------------------------------------------------


class _Capture:
    """Pass scanned records through, keeping what the checks after verify_scanned need."""

    __slots__ = ("checked", "first_leaf", "leaves", "results", "tree")

    def __init__(self) -> None:
        self.tree: MerkleTree | None = None
        self.checked: dict[str, tuple[int, str, str | None]] = {}  # eid -> (leaf, recorded, stored) digests
        self.leaves: list[bytes] = []  # leaf hashes in the order read (the tree verify_scanned builds)
        self.results: dict[str, tuple[int | None, bytes]] = {}  # eid -> (leaf, body) of its last execution.result
        self.first_leaf: dict[str, int | None] = {}

    def wrap(self, scanned: Iterable[ScannedRecord]) -> Iterator[ScannedRecord]:
        append, results, first = self.leaves.append, self.results, self.first_leaf
        for s in scanned:
            append(s.leaf_hash)
            h = s.header
            if h is not None:
                eid = h[0]
                if h[2] == RESULT_KIND:
                    results[eid] = (s.record.leaf_index, s.record.body)
            else:
                eid = s.record.execution_id
            if eid not in first:
                first[eid] = s.record.leaf_index
            yield s


_TREE_REASONS = ("log shorter than checkpoint", "tree root differs from checkpoint")
_LOCATED_REASON = "tree differs from checkpoint"


def _is_tree_problem(p: Problem) -> bool:
    return p.execution_id is None and p.reason.startswith(_TREE_REASONS)


def _duplicates(scanned: Iterable[ScannedRecord], suspects: set[str], unchanged_below: int = 0) -> list[Problem]:
    """Name inserted records among several well-formed ones claiming one execution's seq.

    The genuine one is the record its successor (seq + 1) links to, or one lying before
    ``unchanged_below`` (leaves the signed checkpoints show unchanged); the others were inserted.
    Records that fail their own checks are named already and take no part; identical replays are
    named by the chain check (at the later copy).  Only executions in ``suspects`` are looked at.
    """
    if not suspects:
        return []
    claims: dict[tuple[str, int], list[tuple[int, str]]] = {}
    prevs: dict[tuple[str, int], list[str]] = {}
    for s in scanned:
        h, rec = s.header, s.record
        if h is None or h[0] not in suspects or not s.hash_ok or rec.leaf_index is None:
            continue
        if h[0] != rec.execution_id or h[1] != rec.seq or h[2] != rec.kind:
            continue
        eid, seq, _kind, prev = h
        claims.setdefault((eid, seq), []).append((rec.leaf_index, rec.entry_hash))
        prevs.setdefault((eid, seq), []).append(prev)
    out: list[Problem] = []
    for (eid, seq), found in claims.items():
        if len({eh for _, eh in found}) < 2:
            continue
        links = set(prevs.get((eid, seq + 1), ()))
        genuine = {eh for _, eh in found if eh in links} or {eh for li, eh in found if li < unchanged_below}
        leaves = ", ".join(str(li) for li, _ in found)
        if len(genuine) == 1:
            for li, eh in found:
                if eh not in genuine:
                    out.append(
                        Problem(
                            f"inserted record: seq {seq} of this execution is claimed by leaves {leaves}, "
                            "and this one is not the genuine record",
                            li,
                            eid,
                            seq,
                        )
                    )
        else:
            li = min(li for li, _ in found)
            out.append(Problem(f"seq {seq} of this execution is claimed by leaves {leaves}: one was inserted", li, eid, seq))
    return out


def check_log(
    scan: Callable[[], Iterable[ScannedRecord]],
    ctx: VerifyContext,
    *,
    max_problems: int = 1000,
    diagnose: bool = True,
    prepared: tuple[VerifyReport, _Capture] | None = None,
) -> LedgerReport:
    """Verify a whole log (``scan()`` yields it in leaf order) against ``ctx``.

    The verdict comes from :func:`~ordinance.ledger.verify.verify_scanned` (records, chains, the tree
    against the latest signed checkpoint, completeness of terminal executions) plus: invalid stored
    checkpoints, older signed checkpoints that the log no longer matches (history rewritten and
    re-signed), the ``since`` consistency check, stored PlanResults whose digest differs from the
    journal's ``execution.result``, and records of executions that have no execution row.

    When something is wrong and ``diagnose`` is set, ``scan()`` is called a second time to name the
    first bad record as precisely as the evidence allows: a record inserted into a chain is told from
    the genuine one by which of them its successor links to; a change only the tree shows is pinned
    to a leaf when the store's leaf-hash index still reproduces the signed root, else to the gap
    between the two nearest stored checkpoints (exact when there is a checkpoint per size).
    """
    started = time.perf_counter()
    if prepared is not None:  # an all-good verdict from the parallel pass
        base, cap = prepared
    else:
        cap = _Capture()
        base = verify_scanned(
            cap.wrap(scan()),
            checkpoint=ctx.checkpoint,
            completed_executions=ctx.completed,
            anchors=ctx.anchors,
            max_problems=max_problems,
        )
    # verify_scanned locates a tree mismatch between two anchors itself; keep the numbers, word it here
    located: tuple[int, int] | None = None
    problems = []
    for p in base.problems:
        if p.execution_id is None and p.reason.startswith(_LOCATED_REASON):
            good = p.leaf_index or 0
            bad = min((a.tree_size for a in ctx.anchors if a.tree_size > good), default=good + 1)
            located = (good, bad)
        else:
            problems.append(p)
    omitted = base.problems_omitted
    problems.extend(ctx.problems)
    tree: MerkleTree | None = cap.tree

    def get_tree() -> MerkleTree:
        nonlocal tree
        if tree is None:
            tree = MerkleTree(cap.leaves)
        return tree

    cp = ctx.checkpoint
    status = "none"
    tree_failed = False
    if cp is not None:
        tree_failed = any(_is_tree_problem(p) for p in base.problems)
        status = "failed" if tree_failed else "ok"
        if not tree_failed and len(ctx.anchors) > 1:
            where = locate_divergence(get_tree(), ctx.anchors, min(cp.tree_size, base.tree_size))
            if where is not None:
                good, bad = located = where
                tree_failed = True
                status = "failed"
                problems.append(
                    Problem(
                        f"the log matches the latest checkpoint but not the signed checkpoint of size {bad}: "
                        "history was rewritten and signed again",
                    )
                )

    since_report: ConsistencyReport | None = None
    if ctx.since is not None:
        since_report = verify_consistency_with(ctx.since, get_tree())
        if not since_report.ok:
            leaf = min(base.tree_size, ctx.since.tree_size) if base.tree_size < ctx.since.tree_size else None
            problems.append(Problem(f"--since checkpoint (size {ctx.since.tree_size}): {since_report.reason}", leaf))

    results_checked = 0
    if ctx.result_digest is not None and ctx.completed is not None:
        checks: list[tuple[str, int | None, str, str | None]] = []
        if prepared is not None:  # the workers looked the PlanResults up already
            checks = [(eid, li, want, have) for eid, (li, want, have) in cap.checked.items() if eid in ctx.completed]
        else:
            for eid, (li, body) in cap.results.items():
                want = _recorded_result_digest(body) if eid in ctx.completed else None
                if want is not None:
                    checks.append((eid, li, want, ctx.result_digest(eid, want)))
        for eid, li, want, have in sorted(checks, key=lambda c: -1 if c[1] is None else c[1]):
            results_checked += 1
            if have is None:
                problems.append(Problem("the stored PlanResult of this execution is missing", li, eid))
            elif have != want:
                problems.append(
                    Problem(f"the stored PlanResult (digest {have}) is not the one the journal recorded ({want})", li, eid)
                )

    if ctx.known is not None:
        for eid, li in cap.first_leaf.items():
            if eid not in ctx.known and (ctx.has_execution is None or not ctx.has_execution(eid)):
                problems.append(Problem("journal records of an execution that has no execution row (forged?)", li, eid, 0))

    if problems and diagnose:
        problems.extend(_diagnose(scan, ctx, located, base.tree_size, tree_failed, problems))

    sort_problems(problems)
    uncovered = max(0, base.tree_size - cp.tree_size) if cp is not None else base.tree_size
    return LedgerReport(
        ok=not problems and not omitted,
        scope="store",
        records_checked=base.records_checked,
        executions=base.executions,
        tree_size=base.tree_size,
        root_hash=base.root_hash,
        checkpoint=cp,
        checkpoint_status=status,
        checkpoints_checked=ctx.checkpoints_checked,
        results_checked=results_checked,
        since=since_report,
        problems=problems,
        problems_omitted=omitted,
        elapsed_s=time.perf_counter() - started,
        uncovered=uncovered,
    )


def _diagnose(
    scan: Callable[[], Iterable[ScannedRecord]],
    ctx: VerifyContext,
    where: tuple[int, int] | None,
    size: int,
    tree_failed: bool,
    found: list[Problem],
) -> list[Problem]:
    # two records claiming one seq always make the chain check report a repeat in that execution
    suspects = {p.execution_id for p in found if p.execution_id is not None and "repeated or out of order" in p.reason}

    def duplicates(unchanged_below: int = 0) -> list[Problem]:
        return _duplicates(scan(), suspects, unchanged_below) if suspects else []

    cp = ctx.checkpoint
    if not tree_failed or cp is None:
        return duplicates()
    # 1. The store's leaf-hash index, if it still reproduces the signed root, is the committed leaf sequence:
    #    the first leaf read that differs from it is the first bad record, exactly.
    committed = ctx.committed_leaves(cp.tree_size) if ctx.committed_leaves is not None else None
    if committed is not None and len(committed) == cp.tree_size and MerkleTree(committed).root() == cp.root_hash:
        read = {s.record.leaf_index: s.leaf_hash for s in scan()}
        for i in range(cp.tree_size):
            if read.get(i) != committed[i]:
                return [*duplicates(i),
                        Problem("this record is not the one the signed checkpoint committed to", i)]
    # 2. Else the nearest signed checkpoints around the first difference (``where``, found by the tree pass).
    if where is None:
        extra = duplicates()
        exact = [p.leaf_index for p in found + extra if p.leaf_index is not None]
        if not exact and size >= cp.tree_size:
            extra.append(
                Problem(f"a record among leaves 0..{cp.tree_size - 1} was changed, moved or inserted "
                        "(store more checkpoints to locate such changes)", 0)
            )
        return extra
    good, bad = where
    extra = duplicates(good)
    exact = [p.leaf_index for p in found + extra if p.leaf_index is not None]
    if bad - good == 1:
        extra.append(Problem(f"this record is not the one the signed checkpoint of size {bad} committed to", good))
    elif not any(good <= li < bad for li in exact):
        extra.append(
            Problem(
                f"a record among leaves {good}..{bad - 1} was changed, moved or inserted: the signed checkpoint "
                f"of size {good} still matches, the one of size {bad} does not",
                good,
            )
        )
    return extra


# --------------------------------------------------------------------------------------------------------------
# verifying a store
# --------------------------------------------------------------------------------------------------------------


def verify_store(
    store: Any,
    verifier: Verifier | None,
    *,
    since_note: str | None = None,
    execution_id: str | None = None,
    workers: int | None = None,
    max_problems: int = 1000,
) -> LedgerReport:
    """Verify the store's journal (or one execution's records) against its signed checkpoints.

    ``verifier`` checks the stored checkpoints (``None`` is fine while there are none: then the tree
    is computed but not compared).  ``since_note`` is a signed checkpoint note saved earlier: the
    journal must extend it.  Raises :class:`MissingKeyError` / :class:`UnknownExecutionError`.
    """
    started = time.perf_counter()
    ctx = load_context(store, verifier, since_note=since_note, executions=execution_id is None)
    if execution_id is not None:
        report = _verify_execution(store, ctx, execution_id)
    else:
        size = store.journal_size()
        if workers is None:  # starting workers by spawning (not forking) costs more: wait for a bigger journal
            threshold = PARALLEL_MIN_RECORDS if _can_fork(store) else 4 * PARALLEL_MIN_RECORDS
            workers = default_workers() if size >= threshold else 1
        prepared = _parallel_pass(store, ctx, workers, size) if workers > 1 else None
        report = check_log(lambda: scan_store(store), ctx, max_problems=max_problems, prepared=prepared)
    report.elapsed_s = time.perf_counter() - started
    return report


def _verify_execution(store: Any, ctx: VerifyContext, execution_id: str) -> LedgerReport:
    """One execution: its records and chain, their leaves against the signed checkpoint, its result."""
    from ..store.base import StoreError

    records = list(store.journal(execution_id))
    row = store.get_execution(execution_id)
    if not records and row is None:
        raise UnknownExecutionError(f"no execution {execution_id} in this store")
    problems: list[Problem] = list(ctx.problems)
    chains: Chains = {}
    result_body: tuple[int, bytes] | None = None
    leaves: dict[int, bytes] = {}
    for rec in records:
        s = scan_record(rec)  # type: ignore[arg-type]
        li = rec.leaf_index
        leaves[li] = s.leaf_hash
        if not s.hash_ok:
            problems.append(Problem("entry_hash does not match body", li, rec.execution_id, rec.seq))
        if s.header is None:
            problems.append(Problem(s.error or "record body is not a valid record", li, rec.execution_id, rec.seq))
            chains[rec.execution_id] = [rec.seq + 1, rec.entry_hash, rec.kind, li]
            continue
        eid, seq, kind, prev = s.header
        if eid != rec.execution_id:
            problems.append(Problem(f"record body execution_id differs from its row ({rec.execution_id})", li, eid, seq))
        if seq != rec.seq:
            problems.append(Problem(f"record body seq differs from its row ({rec.seq})", li, eid, seq))
        if kind != rec.kind:
            problems.append(Problem(f"record body kind {kind!r} differs from its row ({rec.kind!r})", li, eid, seq))
        if kind == RESULT_KIND:
            result_body = (li, rec.body)
        chain_step(chains, problems.append, li, execution_id, seq, kind, prev, rec.entry_hash)
    terminal = row is not None and row.status in TERMINAL_STATES
    if terminal:
        miss = incomplete(chains, execution_id)
        if miss is not None:
            problems.append(miss)
    if row is None:
        problems.append(Problem("journal records of an execution that has no execution row (forged?)",
                                records[0].leaf_index, execution_id, 0))

    cp = ctx.checkpoint
    status = "none"
    uncovered = len(records)
    tree_size = store.journal_size()
    root = b""
    if cp is not None:
        status = "ok"
        try:
            committed = store.leaf_hashes(cp.tree_size)
        except StoreError as exc:
            committed = None
            problems.append(Problem(f"the journal's leaf index is broken ({exc}): run a full 'journal verify'"))
            status = "failed"
        if committed is not None:
            if len(committed) < cp.tree_size:
                problems.append(
                    Problem(f"log shorter than checkpoint (truncated): {len(committed)} records, it covers {cp.tree_size}",
                            len(committed))
                )
                status = "failed"
            elif MerkleTree(committed).root() != cp.root_hash:
                problems.append(
                    Problem("the journal's leaves no longer reproduce the signed checkpoint: run a full 'journal verify'")
                )
                status = "failed"
            else:
                for li, lh in sorted(leaves.items()):
                    if li < cp.tree_size and committed[li] != lh:
                        problems.append(Problem("this record is not the one the signed checkpoint committed to", li,
                                                execution_id))
                        status = "failed"
            uncovered = sum(1 for li in leaves if li >= cp.tree_size)
        root = cp.root_hash
    results_checked = 0
    if terminal and result_body is not None and ctx.result_digest is not None:
        li, body = result_body
        want = _recorded_result_digest(body)
        if want is not None:
            results_checked = 1
            have = ctx.result_digest(execution_id, want)
            if have is None:
                problems.append(Problem("the stored PlanResult of this execution is missing", li, execution_id))
            elif have != want:
                problems.append(Problem(f"the stored PlanResult (digest {have}) is not the one the journal recorded "
                                        f"({want})", li, execution_id))
    since_report = None
    if ctx.since is not None:
        try:
            since_report = verify_consistency_with(ctx.since, store.leaf_hashes())
        except StoreError as exc:
            problems.append(Problem(f"cannot check --since: the journal's leaf index is broken ({exc})"))
        else:
            if not since_report.ok:
                problems.append(Problem(f"--since checkpoint (size {ctx.since.tree_size}): {since_report.reason}"))
    sort_problems(problems)
    return LedgerReport(
        ok=not problems,
        scope="execution",
        execution_id=execution_id,
        records_checked=len(records),
        executions=1,
        tree_size=tree_size,
        root_hash=root,
        checkpoint=cp,
        checkpoint_status=status,
        checkpoints_checked=ctx.checkpoints_checked,
        results_checked=results_checked,
        since=since_report,
        problems=problems,
        uncovered=uncovered,
    )


# --------------------------------------------------------------------------------------------------------------
# proofs, export, bundles
# --------------------------------------------------------------------------------------------------------------


def _execution_records(store: Any, execution_id: str) -> list[Any]:
    records = list(store.journal(execution_id))
    if not records:
        if store.get_execution(execution_id) is None:
            raise UnknownExecutionError(f"no execution {execution_id} in this store")
        raise LedgerError(f"execution {execution_id} has no journal records")
    return records


def covering_checkpoint(
    store: Any, size: int, *, signer: Signer | None = None, verifier: Verifier | None = None
) -> tuple[str, Checkpoint]:
    """A signed checkpoint covering at least ``size`` leaves: the latest stored one, or a new one (with ``signer``)."""
    verifier = verifier or (signer.verifier if signer is not None else None)
    if verifier is None:
        raise MissingKeyError("a key is needed to check or make a checkpoint")
    latest = store.latest_checkpoint()
    if latest is not None and latest.tree_size >= size:
        try:
            return latest.note, _open(latest.note, verifier)
        except NoteError as exc:
            raise LedgerError(
                f"the store's latest checkpoint (tree size {latest.tree_size}) does not verify: {exc}; "
                "run 'ordinance journal verify'"
            ) from None
    if signer is None:
        raise LedgerError(f"no signed checkpoint covers leaf {size - 1}; run 'ordinance journal checkpoint'")
    note, cp = checkpoint(store, signer)
    if cp.tree_size < size:  # pragma: no cover - the log cannot shrink under a successful checkpoint
        raise LedgerError(f"the new checkpoint (size {cp.tree_size}) does not cover leaf {size - 1}")
    return note, cp


def _committed_tree(store: Any, cp: Checkpoint) -> MerkleTree:
    from ..store.base import StoreError

    try:
        hashes = store.leaf_hashes(cp.tree_size)
    except StoreError as exc:
        raise LedgerError(f"cannot read the journal's leaf hashes: {exc}; run 'ordinance journal verify'") from None
    tree = MerkleTree(hashes)
    if tree.size != cp.tree_size or tree.root() != cp.root_hash:
        raise LedgerError(
            f"the journal no longer reproduces the signed checkpoint of size {cp.tree_size}; run 'ordinance journal verify'"
        )
    return tree


def prove(
    store: Any, execution_id: str, signer: Signer | None = None, *, verifier: Verifier | None = None
) -> dict[str, Any]:
    """Inclusion proofs of every record of ``execution_id`` against a signed checkpoint.

    Uses the latest stored checkpoint when it covers all the records, else signs a new one
    (``signer`` needed).  Each proof is checked against the checkpoint with the record's leaf hash
    recomputed from its body before it is returned; a mismatch raises :class:`LedgerError`.
    Proof hashes are standard base64 (as in the checkpoint note), ``leaf_hash``/``root_hash`` hex.
    """
    records = _execution_records(store, execution_id)
    need = max(r.leaf_index for r in records) + 1
    note, cp = covering_checkpoint(store, need, signer=signer, verifier=verifier)
    tree = _committed_tree(store, cp)
    out = []
    for rec in records:
        lh = record_leaf_hash(rec.body)
        proof = tree.inclusion_proof(rec.leaf_index, cp.tree_size)
        try:
            verify_inclusion(lh, rec.leaf_index, cp.tree_size, proof, cp.root_hash)
        except ProofError:
            raise LedgerError(
                f"the record at leaf {rec.leaf_index} (seq {rec.seq}) is not the one the checkpoint committed to: "
                "the journal was changed; run 'ordinance journal verify'"
            ) from None
        out.append(
            {
                "leaf_index": rec.leaf_index,
                "seq": rec.seq,
                "kind": rec.kind,
                "entry_hash": rec.entry_hash,
                "leaf_hash": lh.hex(),
                "inclusion_proof": [base64.b64encode(p).decode("ascii") for p in proof],
            }
        )
    return {
        "execution_id": execution_id,
        "checkpoint": cp.to_dict(),
        "checkpoint_note": note,
        "records": out,
    }


def export_records(store: Any, execution_id: str) -> Iterator[dict[str, Any]]:
    """One execution's records as ``{"leaf_index", "entry_hash", "record"}`` (the parsed body), in leaf order.

    A body that is not valid JSON is given as ``"record": null`` plus ``"body"`` (its text).
    """
    for rec in _execution_records(store, execution_id):
        item: dict[str, Any] = {"leaf_index": rec.leaf_index, "entry_hash": rec.entry_hash}
        try:
            item["record"] = loads(rec.body)
        except ValueError:
            item["record"] = None
            item["body"] = rec.body.decode("utf-8", "replace")
        yield item


def export_bundle(store: Any, execution_id: str, signer: Signer | None = None, *,
                  verifier: Verifier | None = None) -> dict[str, Any]:
    """An offline bundle of ``execution_id`` (records, inclusion proofs, a signed checkpoint covering them).

    The bundle verifies with :func:`~ordinance.ledger.bundle.verify_bundle` and only the log's public key.
    """
    records = _execution_records(store, execution_id)
    need = max(r.leaf_index for r in records) + 1
    note, cp = covering_checkpoint(store, need, signer=signer, verifier=verifier)
    tree = _committed_tree(store, cp)
    row = store.get_execution(execution_id)
    meta = {
        "execution_id": execution_id,
        "status": row.status if row is not None else None,
        "exported_at": _now_ms(),
        "origin": cp.origin,
    }
    try:
        return build_bundle(records, tree, note, meta=meta)  # type: ignore[arg-type]
    except (ValueError, UnicodeDecodeError, RecordError) as exc:
        raise LedgerError(f"cannot export execution {execution_id}: {exc}; run 'ordinance journal verify'") from None
