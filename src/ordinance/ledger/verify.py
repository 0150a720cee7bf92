"""Full journal verification (§8): chains, tree and checkpoints, naming the first bad record.

:func:`verify_log` re-derives everything from the record bodies in one pass:

* leaf indices run 0, 1, 2, … without gaps or repeats;
* each row's ``entry_hash`` is the digest of its body, and the body's ``execution_id``, ``seq``
  and ``kind`` agree with the row's columns;
* per execution, ``seq`` runs 0, 1, 2, … and each ``prev_entry_hash`` is the previous record's
  ``entry_hash`` (:data:`~ordinance.ledger.records.ZERO_HASH` for seq 0); nothing follows an
  ``execution.result`` record, and a completed execution must end with one;
* the Merkle root of the first ``checkpoint.tree_size`` leaves equals the checkpoint's root, and
  the log is not shorter than the checkpoint.

Chains localise a change within one execution.  A reordering *between* executions, or a forged
execution that is consistent in itself, is caught only by the tree; one checkpoint root cannot say
where.  Give the older signed checkpoints the store kept as ``anchors`` and the report pins the
first differing leaf down to the gap between two anchors (exactly, with one anchor per size).

:func:`verify_consistency_with` is the "verify --since" check: the current log must extend an old
checkpoint (RFC 9162 consistency proof), otherwise history was rewritten or truncated.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, NamedTuple

from .merkle import EMPTY_ROOT, MerkleTree, ProofError, verify_consistency
from .note import Checkpoint
from .records import RESULT_KIND, ZERO_HASH, RecordError, StoredRecord, _validate, loads

__all__ = [
    "ConsistencyReport",
    "Problem",
    "ScannedRecord",
    "VerifyReport",
    "scan_record",
    "verify_consistency_with",
    "verify_log",
    "verify_scanned",
]


@dataclass(frozen=True)
class Problem:
    """One finding.  ``leaf_index`` is ``None`` for findings about the log or an execution as a whole."""

    reason: str
    leaf_index: int | None = None
    execution_id: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = []
        if self.leaf_index is not None:
            where.append(f"leaf {self.leaf_index}")
        if self.execution_id is not None:
            where.append(f"execution {self.execution_id}" + (f" seq {self.seq}" if self.seq is not None else ""))
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "leaf_index": self.leaf_index,
            "execution_id": self.execution_id,
            "seq": self.seq,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_log`.  ``problems`` is sorted: by leaf index, log-wide findings last."""

    ok: bool
    records_checked: int
    executions: int
    tree_size: int
    root_hash: bytes
    problems: list[Problem] = field(default_factory=list)
    problems_omitted: int = 0
    checkpoint: Checkpoint | None = None

    @property
    def first_bad(self) -> Problem | None:
        """The earliest finding: the first bad record when one can be named."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line for humans."""
        if self.ok:
            against = f", matches checkpoint at size {self.checkpoint.tree_size}" if self.checkpoint else ""
            return (
                f"OK: {self.records_checked} records in {self.executions} executions, "
                f"tree size {self.tree_size}, root {self.root_hash.hex()}{against}"
            )
        more = len(self.problems) - 1 + self.problems_omitted
        return f"FAILED at {self.first_bad}" + (f" (and {more} more)" if more else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "records_checked": self.records_checked,
            "executions": self.executions,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
            "first_bad": self.first_bad.to_dict() if self.first_bad else None,
            "problems": [p.to_dict() for p in self.problems],
            "problems_omitted": self.problems_omitted,
        }


Chains = dict[str, list[Any]]
"""Per execution: [next seq, entry_hash of its last record, kind of its last record, its leaf index]."""


def chain_step(
    chains: Chains,
    add: Callable[[Problem], None],
    li: int,
    eid: str,
    seq: int,
    kind: str,
    prev: str,
    entry_hash: str,
) -> None:
    """Check one record against its execution's chain so far, report through ``add``, advance the chain."""
    state = chains.get(eid)
    if state is None:
        state = chains[eid] = [0, ZERO_HASH, None, None]
    next_seq, last_hash, last_kind, last_leaf = state
    if last_kind == RESULT_KIND:
        add(Problem(f"record follows the execution's final {RESULT_KIND} record (leaf {last_leaf})", li, eid, seq))
    if seq != next_seq:
        if seq > next_seq:
            add(Problem(f"seq gap: expected {next_seq}, found {seq}", li, eid, seq))
            state[:] = (seq + 1, entry_hash, kind, li)
        else:  # a repeat or a step back: leave the chain as it was
            add(Problem(f"seq {seq} repeated or out of order: expected {next_seq}", li, eid, seq))
        return
    if prev != last_hash:
        if seq == 0:
            add(Problem("prev_entry_hash of the first record is not the zero hash", li, eid, seq))
        else:
            add(Problem(f"prev_entry_hash does not link to seq {seq - 1} (leaf {last_leaf})", li, eid, seq))
    state[:] = (seq + 1, entry_hash, kind, li)


def incomplete(chains: Chains, eid: str) -> Problem | None:
    """A finding if execution ``eid`` does not end with its ``execution.result`` record."""
    state = chains.get(eid)
    if state is None:
        return Problem("completed execution has no records", None, eid)
    if state[2] != RESULT_KIND:
        return Problem(
            f"execution ends with seq {state[0] - 1} ({state[2]!r}), not {RESULT_KIND!r}: its tail is missing (truncated)",
            None,
            eid,
            state[0],
        )
    return None


def sort_problems(problems: list[Problem]) -> None:
    """Sort in place: by leaf index (stable), findings without a leaf last."""
    problems.sort(key=_sort_key)


def _sort_key(p: Problem) -> tuple[bool, int]:
    return (p.leaf_index is None, p.leaf_index or 0)


class ScannedRecord(NamedTuple):
    """What one record says about itself: the per-record half of verification.

    Scanning is a pure function of the record, independent of the rest of the log, so a caller
    may scan records in parallel or reuse scans of records that did not change.
    """

    record: StoredRecord
    leaf_hash: bytes
    """``sha256(0x00 || body)``."""
    hash_ok: bool
    """Whether the row's ``entry_hash`` is the digest of the body."""
    header: tuple[str, int, str, str] | None
    """``(execution_id, seq, kind, prev_entry_hash)`` from the body, ``None`` if the body is not a valid record."""
    error: str | None
    """Why the body is not a valid record."""


def scan_record(rec: StoredRecord) -> ScannedRecord:
    """Hash and parse one record (see :class:`ScannedRecord`)."""
    body = rec.body
    hash_ok = "sha256:" + sha256(body).hexdigest() == rec.entry_hash
    try:
        obj = _validate(loads(body))
    except ValueError as exc:  # invalid JSON/UTF-8, or not a valid record
        error = str(exc) if isinstance(exc, RecordError) else f"record body is not valid JSON: {exc}"
        return ScannedRecord(rec, sha256(b"\x00" + body).digest(), hash_ok, None, error)
    header = (obj["execution_id"], obj["seq"], obj["kind"], obj["prev_entry_hash"])
    return ScannedRecord(rec, sha256(b"\x00" + body).digest(), hash_ok, header, None)


def verify_log(
    records: Iterable[StoredRecord],
    *,
    checkpoint: Checkpoint | None = None,
    completed_executions: Collection[str] | None = None,
    anchors: Iterable[Checkpoint] = (),
    max_problems: int = 1000,
) -> VerifyReport:
    """Verify the store's whole log, given in leaf-index order.

    ``checkpoint`` is the latest trusted (signature-checked) checkpoint; ``completed_executions``
    lists executions that finished, whose last record must be ``execution.result``; ``anchors`` are
    older trusted checkpoints of the same log, used only to locate a tree mismatch.  At most
    ``max_problems`` per-record findings are kept (the rest are counted).
    """
    return verify_scanned(
        map(scan_record, records),
        checkpoint=checkpoint,
        completed_executions=completed_executions,
        anchors=anchors,
        max_problems=max_problems,
    )


def verify_scanned(
    scanned: Iterable[ScannedRecord],
    *,
    checkpoint: Checkpoint | None = None,
    completed_executions: Collection[str] | None = None,
    anchors: Iterable[Checkpoint] = (),
    max_problems: int = 1000,
) -> VerifyReport:
    """:func:`verify_log` over records already passed through :func:`scan_record`."""
    problems: list[Problem] = []
    omitted = 0

    def add(p: Problem) -> None:
        nonlocal omitted
        if len(problems) < max_problems:
            problems.append(p)
        else:
            omitted += 1

    chains: Chains = {}
    leaf_hashes: list[bytes] = []
    append_leaf = leaf_hashes.append
    expected = 0
    checked = 0
    for rec, lh, hash_ok, header, error in scanned:
        checked += 1
        li = rec.leaf_index
        if li == expected and type(li) is int:
            expected += 1
        elif type(li) is not int or li < 0:
            add(Problem("record has no valid leaf index", expected, rec.execution_id, rec.seq))
            li = expected
            expected += 1
        elif li > expected:
            missing = (
                f"leaf {expected} is missing" if li == expected + 1 else f"leaves {expected}..{li - 1} are missing"
            )
            add(Problem(f"leaf index gap: expected {expected}, found {li} ({missing})", expected))
            expected = li + 1
        else:
            add(
                Problem(
                    f"leaf index {li} is repeated or out of order (expected {expected})", li, rec.execution_id, rec.seq
                )
            )
        append_leaf(lh)
        if not hash_ok:
            add(Problem("entry_hash does not match body", li, rec.execution_id, rec.seq))
        if header is None:
            add(Problem(error or "record body is not a valid record", li, rec.execution_id, rec.seq))
            # keep the row's view of the chain so one bad body does not condemn its successors
            chains[rec.execution_id] = [rec.seq + 1, rec.entry_hash, rec.kind, li]
            continue
        eid, seq, kind, prev = header
        if eid != rec.execution_id:
            add(Problem(f"record body execution_id differs from its row ({rec.execution_id})", li, eid, seq))
        if seq != rec.seq:
            add(Problem(f"record body seq differs from its row ({rec.seq})", li, eid, seq))
        if kind != rec.kind:
            add(Problem(f"record body kind {kind!r} differs from its row ({rec.kind!r})", li, eid, seq))
        chain_step(chains, add, li, eid, seq, kind, prev, rec.entry_hash)

    tree = MerkleTree(leaf_hashes)
    size = tree.size
    anchor_list = sorted(anchors, key=lambda c: c.tree_size)
    if checkpoint is None and anchor_list:
        checkpoint = anchor_list[-1]
    if checkpoint is not None:
        cs = checkpoint.tree_size
        mismatch = False
        if size < cs:
            reason = f"log shorter than checkpoint (truncated): {size} records, the checkpoint covers {cs}"
            problems.append(Problem(reason, size))
            mismatch = True
        elif tree.root(cs) != checkpoint.root_hash:
            problems.append(Problem(f"tree root differs from checkpoint at size {cs}: the log was changed"))
            mismatch = True
        if mismatch and anchor_list:
            located = _locate(tree, anchor_list, min(size, cs))
            if located is not None:
                problems.append(located)

    for eid in sorted(completed_executions or ()):
        found = incomplete(chains, eid)
        if found is not None:
            problems.append(found)

    sort_problems(problems)
    return VerifyReport(
        ok=not problems and not omitted,
        records_checked=checked,
        executions=len(chains),
        tree_size=size,
        root_hash=tree.root(),
        problems=problems,
        problems_omitted=omitted,
        checkpoint=checkpoint,
    )


def locate_divergence(tree: MerkleTree, anchors: Sequence[Checkpoint], limit: int) -> tuple[int, int] | None:
    """``(good, bad)``: the largest anchor size (≤ ``limit``) whose root the log still matches, and the smallest
    whose it does not; None when every anchor matches. Roots are prefix-monotone (once a prefix differs, every
    longer one does), so a binary search finds them."""
    by_size: dict[int, Checkpoint] = {}
    for a in anchors:
        if 1 <= a.tree_size <= limit:
            by_size.setdefault(a.tree_size, a)
    usable = sorted(by_size.values(), key=lambda a: a.tree_size)
    lo, hi = 0, len(usable)
    while lo < hi:
        mid = (lo + hi) // 2
        if tree.root(usable[mid].tree_size) != usable[mid].root_hash:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(usable):
        return None
    return (usable[lo - 1].tree_size if lo else 0), usable[lo].tree_size


def _locate(tree: MerkleTree, anchors: Sequence[Checkpoint], limit: int) -> Problem | None:
    """Find the first anchor (size ≤ ``limit``) whose root the log no longer matches.

    Roots are prefix-monotone (once a prefix differs, every longer one does), so a binary search
    finds the earliest failing anchor; the first changed leaf lies between it and the one before.
    """
    where = locate_divergence(tree, anchors, limit)
    if where is None:
        return None
    good, bad = where
    if bad - good == 1:
        reason = f"tree differs from checkpoint: leaf {good} is not the leaf the checkpoint of size {bad} committed to"
    else:
        reason = f"tree differs from checkpoint: the first changed leaf lies in {good}..{bad - 1}"
    return Problem(reason, good)


@dataclass(frozen=True)
class ConsistencyReport:
    """Outcome of :func:`verify_consistency_with`."""

    ok: bool
    old_size: int
    new_size: int
    new_root: bytes
    proof: list[bytes]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "new_root": self.new_root.hex(),
            "proof": [p.hex() for p in self.proof],
            "reason": self.reason,
        }


def verify_consistency_with(
    old_checkpoint: Checkpoint,
    leaf_hashes: Sequence[bytes] | MerkleTree,
    *,
    new_checkpoint: Checkpoint | None = None,
) -> ConsistencyReport:
    """Check that the current log extends ``old_checkpoint`` ("verify --since").

    Builds the RFC 9162 consistency proof from the old size to the current size (or to
    ``new_checkpoint``'s size, whose root must then match too) and verifies it against the old
    root.  A log shorter than the old checkpoint is a truncation; a failing proof means the first
    ``old_size`` leaves were rewritten.
    """
    tree = leaf_hashes if isinstance(leaf_hashes, MerkleTree) else MerkleTree(leaf_hashes)
    old = old_checkpoint.tree_size
    new = tree.size if new_checkpoint is None else new_checkpoint.tree_size

    def fail(reason: str, root: bytes = b"", proof: list[bytes] | None = None) -> ConsistencyReport:
        return ConsistencyReport(False, old, new, root, proof or [], reason)

    if new < old:
        return fail(f"the newer checkpoint (size {new}) is smaller than the old one (size {old}): truncated")
    if tree.size < new:
        what = "the old checkpoint" if new_checkpoint is None else "the new checkpoint"
        return fail(f"log shorter than {what} (truncated): {tree.size} records, it covers {new}")
    new_root = tree.root(new)
    if new_checkpoint is not None and new_root != new_checkpoint.root_hash:
        return fail(f"tree root at size {new} differs from the new checkpoint: the log was changed", new_root)
    if old == 0:
        if old_checkpoint.root_hash != EMPTY_ROOT:
            return fail("the old checkpoint has size 0 but not the empty tree's root", new_root)
        return ConsistencyReport(True, old, new, new_root, [])
    proof = tree.consistency_proof(old, new)
    try:
        verify_consistency(old, new, proof, old_checkpoint.root_hash, new_root)
    except ProofError as exc:
        return fail(f"history was rewritten: the log does not extend the old checkpoint ({exc})", new_root, proof)
    return ConsistencyReport(True, old, new, new_root, proof)
