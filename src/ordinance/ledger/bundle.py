"""Offline export bundles (§8): records, their inclusion proofs and a signed checkpoint.

A bundle is a JSON object::

    {"format": "ordinance.journal-bundle/v1",
     "checkpoint": "<signed checkpoint note>",
     "records": [{"leaf_index": 17, "body": "<record body, UTF-8 text>",
                  "entry_hash": "sha256:…", "inclusion_proof": ["<base64 hash>", …]}, …],
     "meta"?: {…}}

Every inclusion proof is against the checkpoint's tree size.  :func:`verify_bundle` needs only the
log's public (verifier) key: it checks the note signature, then each record's leaf hash against
the checkpoint root, its entry hash, and each execution's chain.  ``meta`` is informational and
not covered by any signature.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .merkle import HASH_SIZE, MerkleTree, ProofError, verify_inclusion
from .note import Checkpoint, NoteError, Verifier, note_text, open_note
from .records import StoredRecord, _validate, digest, loads, record_leaf_hash
from .verify import Chains, Problem, chain_step, incomplete, sort_problems

__all__ = ["BUNDLE_FORMAT", "BundleReport", "ProofProvider", "build_bundle", "verify_bundle"]

BUNDLE_FORMAT = "ordinance.journal-bundle/v1"
"""The bundle's ``format`` tag."""

ProofProvider = Callable[[int, int], Sequence[bytes]]
"""``(leaf_index, tree_size) -> inclusion proof``."""

_RECORD_KEYS = {"leaf_index", "body", "entry_hash", "inclusion_proof"}


def build_bundle(
    execution_records: Iterable[StoredRecord],
    proofs: MerkleTree | Sequence[bytes] | ProofProvider,
    signed_checkpoint_note: str,
    *,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a JSON-serialisable bundle of ``execution_records``.

    ``proofs`` is a :class:`MerkleTree` of the log, the log's leaf hashes, or a function giving
    the inclusion proof of a leaf at a tree size.  Every record needs a ``leaf_index`` below the
    checkpoint's tree size, and every proof is checked against the checkpoint before it is
    written, so a bundle that is built always verifies.  Raises ``ValueError`` otherwise.
    """
    cp = Checkpoint.parse(note_text(signed_checkpoint_note))
    if isinstance(proofs, MerkleTree) or not callable(proofs):
        tree = proofs if isinstance(proofs, MerkleTree) else MerkleTree(proofs)
        if tree.size < cp.tree_size:
            raise ValueError(f"the log has {tree.size} leaves, fewer than the checkpoint's {cp.tree_size}")
        provider: ProofProvider = tree.inclusion_proof
    else:
        provider = proofs
    records = sorted(execution_records, key=lambda r: -1 if r.leaf_index is None else r.leaf_index)
    out = []
    for rec in records:
        li = rec.leaf_index
        if li is None or not 0 <= li < cp.tree_size:
            raise ValueError(f"record {rec.execution_id} seq {rec.seq} has leaf index {li}, outside the checkpoint")
        proof = list(provider(li, cp.tree_size))
        try:
            verify_inclusion(record_leaf_hash(rec.body), li, cp.tree_size, proof, cp.root_hash)
        except ProofError as exc:
            raise ValueError(f"record at leaf {li} does not match the checkpoint: {exc}") from None
        out.append(
            {
                "leaf_index": li,
                "body": rec.body.decode("utf-8"),
                "entry_hash": rec.entry_hash,
                "inclusion_proof": [base64.b64encode(p).decode("ascii") for p in proof],
            }
        )
    bundle: dict[str, Any] = {"format": BUNDLE_FORMAT, "checkpoint": signed_checkpoint_note, "records": out}
    if meta is not None:
        bundle["meta"] = meta
    return bundle


@dataclass(frozen=True)
class BundleReport:
    """Outcome of :func:`verify_bundle`.  ``problems`` is sorted by leaf index."""

    ok: bool
    checkpoint: Checkpoint | None
    records_checked: int
    executions: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def first_bad(self) -> Problem | None:
        """The earliest finding."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line for humans."""
        if self.ok and self.checkpoint is not None:
            return (
                f"OK: {self.records_checked} records in {self.executions} executions verified against "
                f"checkpoint {self.checkpoint.origin} size {self.checkpoint.tree_size}"
            )
        return f"FAILED at {self.first_bad}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
            "records_checked": self.records_checked,
            "executions": self.executions,
            "first_bad": self.first_bad.to_dict() if self.first_bad else None,
            "problems": [p.to_dict() for p in self.problems],
        }


def _hash_b64(text: Any) -> bytes | None:
    """A strict, canonical standard-base64 32-byte hash, or ``None``."""
    if type(text) is not str or len(text) != 44:
        return None
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != HASH_SIZE or binascii.b2a_base64(raw, newline=False).decode("ascii") != text:
        return None
    return raw


def verify_bundle(
    bundle: Any,
    verifier_key: str | Verifier | Iterable[str | Verifier],
    *,
    origin: str | None = None,
    require_complete: bool = True,
) -> BundleReport:
    """Verify a bundle offline with only the log's verifier key(s).

    With ``origin``, the checkpoint must name that log.  With ``require_complete`` (the default),
    every execution in the bundle must end with its ``execution.result`` record, so dropping an
    execution's last records is detected; pass ``False`` for a running execution's partial journal.
    """

    def fail(reason: str, cp: Checkpoint | None = None) -> BundleReport:
        return BundleReport(False, cp, 0, 0, [Problem(reason)])

    if not isinstance(bundle, dict):
        return fail("malformed bundle: not a JSON object")
    if bundle.get("format") != BUNDLE_FORMAT:
        return fail(f"malformed bundle: format is {bundle.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    unknown = sorted(set(bundle) - {"format", "checkpoint", "records", "meta"})
    if unknown:
        return fail(f"malformed bundle: unknown field(s) {', '.join(unknown)}")
    note, records = bundle.get("checkpoint"), bundle.get("records")
    if not isinstance(note, str) or not isinstance(records, list):
        return fail("malformed bundle: needs a 'checkpoint' note string and a 'records' list")
    try:
        cp = Checkpoint.parse(open_note(note, verifier_key))
    except NoteError as exc:
        return fail(f"checkpoint rejected: {exc}")
    if origin is not None and cp.origin != origin:
        return fail(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}", cp)

    problems: list[Problem] = []
    add = problems.append
    chains: Chains = {}
    last_leaf = -1
    for pos, item in enumerate(records):
        if not isinstance(item, dict) or set(item) != _RECORD_KEYS:
            add(Problem(f"malformed bundle record #{pos}: needs exactly {sorted(_RECORD_KEYS)}"))
            continue
        li, text, entry_hash, proof_b64 = item["leaf_index"], item["body"], item["entry_hash"], item["inclusion_proof"]
        if (
            type(li) is not int
            or not isinstance(text, str)
            or not isinstance(entry_hash, str)
            or not isinstance(proof_b64, list)
        ):
            add(Problem(f"malformed bundle record #{pos}: a field has the wrong type"))
            continue
        if li <= last_leaf:
            add(Problem(f"records out of leaf order: leaf {li} follows leaf {last_leaf}", li))
        last_leaf = max(last_leaf, li)
        if not 0 <= li < cp.tree_size:
            add(Problem(f"leaf index outside the checkpoint's tree of size {cp.tree_size}", li))
            continue
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            add(Problem("record body is not valid UTF-8 text", li))
            continue
        proof = [_hash_b64(p) for p in proof_b64]
        if any(p is None for p in proof):
            add(Problem("inclusion proof holds an element that is not a base64 32-byte hash", li))
            continue
        try:
            verify_inclusion(record_leaf_hash(body), li, cp.tree_size, proof, cp.root_hash)  # type: ignore[arg-type]
        except ProofError as exc:
            add(Problem(f"record is not in the checkpointed log: inclusion proof fails ({exc})", li))
            continue
        body_digest = digest(body)
        if body_digest != entry_hash:
            add(Problem("entry_hash does not match body", li))
        try:
            obj = _validate(loads(body))
        except ValueError as exc:
            add(Problem(f"record body is malformed: {exc}", li))
            continue
        chain_step(chains, add, li, obj["execution_id"], obj["seq"], obj["kind"], obj["prev_entry_hash"], body_digest)
    if require_complete:
        for eid in sorted(chains):
            found = incomplete(chains, eid)
            if found is not None:
                add(found)
    if not records:
        add(Problem("bundle holds no records"))
    sort_problems(problems)
    return BundleReport(not problems, cp, len(records), len(chains), problems)
