"""§8: hash chains, the store-wide RFC 6962 Merkle tree, signed checkpoints, verification, export bundles."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from ..harness import Harness, sid
from ..registry import check, ensure, equal

_ZERO = "sha256:" + "0" * 64
_STEP_VIEW = {"operation_type", "status", "started_at", "completed_at", "pre_state_hash", "post_state_hash",
              "error_message", "compensation_status"}


def _populate(h: Harness) -> list[Any]:
    """A few executions of every outcome, so the log has interleaved chains."""
    return [
        h.run(h.plan({"action": "fs.write", "payload": {"path": "a.txt", "content": "x"}},
                     {"action": "control.echo", "payload": {"value": 1}, "depends_on": [sid(1)]})),
        h.run(h.plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"})),
        h.run(h.plan({"action": "fs.write", "payload": {"path": "b.txt", "content": "y"}},
                     {"action": "control.fail", "depends_on": [sid(1)]})),
        h.run(h.plan({"action": "no.such.action"})),
    ]


def _rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 6962 §2.1, written out independently of the engine's implementation."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc6962_root(leaves[:k]) + _rfc6962_root(leaves[k:])).digest()


@check("§8", "records: fields, zero first prev hash, entry_hash = digest of the body, linked chains, StepRecord view")
def _(h: Harness) -> str:
    from ...contract.canonical import canonical_bytes, digest

    runs = _populate(h)
    n = 0
    for r in runs:
        rows = list(h.store.journal(r.execution_id))
        prev = _ZERO
        for i, row in enumerate(rows):
            rec = json.loads(row.body)
            ensure({"seq", "execution_id", "kind", "at", "data", "prev_entry_hash"} <= set(rec),
                   f"record {i} lacks fields: {sorted(rec)}")
            ensure(set(rec) <= {"seq", "execution_id", "kind", "at", "data", "prev_entry_hash", "step_id", "attempt"},
                   f"record {i} has unexpected fields: {sorted(rec)}")
            equal((rec["seq"], rec["execution_id"], rec["prev_entry_hash"]), (i, r.execution_id, prev),
                  f"{r.status.value} record {i}: seq, execution_id, prev_entry_hash")
            equal(row.body, canonical_bytes(rec), f"record {i}: the body is canonical JSON")
            equal(row.entry_hash, digest(rec), f"record {i}: entry_hash = digest of the record without entry_hash")
            if rec["kind"].startswith("step.") and rec["kind"] != "step.retry_scheduled":
                missing = _STEP_VIEW - set(rec["data"])
                ensure(not missing, f"step record {rec['kind']} lacks the StepRecord view fields {sorted(missing)}")
            prev = row.entry_hash
            n += 1
        last = json.loads(rows[-1].body)
        equal(last["kind"], "execution.result", f"{r.status.value}: last record kind")
        equal(last["data"].get("result_digest"), digest(h.store.get_result(r.execution_id)),
              f"{r.status.value}: the last record holds the digest of the PlanResult")
    return f"{n} records in {len(runs)} chains"


@check("§8", "every record is a leaf of one RFC 6962 tree; inclusion proofs verify, a wrong leaf does not")
def _(h: Harness) -> str:
    from ...ledger.merkle import MerkleTree, ProofError, leaf_hash, node_hash, verify_inclusion

    _populate(h)
    rows = list(h.store.journal())
    equal([r.leaf_index for r in rows], list(range(len(rows))), "leaf indices")
    leaves = [hashlib.sha256(b"\x00" + r.body).digest() for r in rows]
    equal(h.store.leaf_hashes(), leaves, "the store's leaf hashes (sha256(0x00 || body))")
    equal(leaf_hash(b"abc"), hashlib.sha256(b"\x00abc").digest(), "leaf_hash")
    equal(node_hash(b"l" * 32, b"r" * 32), hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest(), "node_hash")
    tree = MerkleTree(leaves)
    root = _rfc6962_root(leaves)
    equal(tree.root(), root, "tree root (against an independent RFC 6962 computation)")
    for size in (1, 2, 3, 7, len(leaves)):
        equal(tree.root(size), _rfc6962_root(leaves[:size]), f"root of the first {size} leaves")
    for i in range(len(leaves)):
        verify_inclusion(leaves[i], i, len(leaves), tree.inclusion_proof(i), root)
    bad = 0
    for i in (0, len(leaves) // 2, len(leaves) - 1):
        try:
            verify_inclusion(hashlib.sha256(b"\x00forged").digest(), i, len(leaves), tree.inclusion_proof(i), root)
        except ProofError:
            bad += 1
    equal(bad, 3, "forged leaves rejected by inclusion verification")
    return f"{len(leaves)} leaves, every inclusion proof verified"


@check("§8", "checkpoints {origin, tree_size, root_hash} are signed with Ed25519 and verified with the public key")
def _(h: Harness) -> None:
    from ...ledger.merkle import MerkleTree
    from ...ledger.note import NoteError, Signer, open_checkpoint
    from ...ledger.service import checkpoint

    _populate(h)
    signer = Signer.generate("conformance.example/log")
    note, cp = checkpoint(h.store, signer)
    opened = open_checkpoint(note, signer.verifier.to_key())
    equal((opened.origin, opened.tree_size, opened.root_hash),
          ("conformance.example/log", h.store.journal_size(), MerkleTree(h.store.leaf_hashes()).root()),
          "the signed checkpoint (origin, size, root)")
    ensure("— conformance.example/log " in note, "the note carries no signature line for the origin")
    stranger = Signer.generate("conformance.example/log")
    lines = note.split("\n")
    tampered = "\n".join([lines[0], str(int(lines[1]) + 1)] + lines[2:])
    for what, text, key in (("another key", note, stranger.verifier.to_key()),
                            ("a changed tree size", tampered, signer.verifier.to_key())):
        try:
            open_checkpoint(text, key)
        except NoteError:
            continue
        raise AssertionError(f"a checkpoint note verified with {what}")


def _tamper(h: Harness, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(str(h.db_path), timeout=30)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def _put(h: Harness, leaf_index: int, rec: Any) -> None:
    """Store ``rec`` (every column but the leaf index) at ``leaf_index``."""
    _tamper(h, "UPDATE journal SET seq = ?, kind = ?, body = ?, entry_hash = ?, leaf_hash = ? WHERE leaf_index = ?",
            (rec.seq, rec.kind, rec.body, rec.entry_hash, hashlib.sha256(b"\x00" + rec.body).digest(), leaf_index))


def _verify(h: Harness, **kw: Any) -> Any:
    from ...ledger.verify import verify_log

    return verify_log(list(h.store.journal()), **kw)


def _one_byte(body: bytes) -> bytes:
    """Change one digit of the record's "at" value: still valid JSON, a different record."""
    i = body.index(b'"at":') + 5
    digit = body[i:i + 1]
    return body[:i] + (b"2" if digit != b"2" else b"3") + body[i + 1:]


@check("§8", "verification names the first bad record: changed byte, deletion, reordering, truncation")
def _(h: Harness) -> str:
    from ...ledger.note import Checkpoint
    from ...ledger.merkle import MerkleTree

    runs = _populate(h)
    clean = _verify(h)
    ensure(clean.ok, f"verification of an untouched journal failed: {clean.summary()}")
    size = h.store.journal_size()
    cp = Checkpoint("conformance.example/log", size, MerkleTree(h.store.leaf_hashes()).root())
    rows = list(h.store.journal())
    found = []

    target = rows[size // 2]
    _tamper(h, "UPDATE journal SET body = ? WHERE leaf_index = ?", (_one_byte(target.body), target.leaf_index))
    rep = _verify(h, checkpoint=cp)
    ensure(not rep.ok, "one changed byte in a record body was not detected")
    equal(rep.first_bad.leaf_index if rep.first_bad else None, target.leaf_index, "first bad record (changed byte)")
    found.append("byte")
    _tamper(h, "UPDATE journal SET body = ? WHERE leaf_index = ?", (target.body, target.leaf_index))
    ensure(_verify(h, checkpoint=cp).ok, "the journal does not verify after restoring the byte")

    # deletion of a record in the middle
    victim = rows[3]
    _tamper(h, "DELETE FROM journal WHERE leaf_index = ?", (victim.leaf_index,))
    rep = _verify(h, checkpoint=cp)
    ensure(not rep.ok, "a deleted record was not detected")
    equal(rep.first_bad.leaf_index if rep.first_bad else None, victim.leaf_index, "first bad record (deletion)")
    _tamper(h, "INSERT INTO journal (leaf_index, execution_id, seq, kind, body, entry_hash, leaf_hash) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (victim.leaf_index, victim.execution_id, victim.seq, victim.kind, victim.body, victim.entry_hash,
             hashlib.sha256(b"\x00" + victim.body).digest()))
    ensure(_verify(h, checkpoint=cp).ok, "the journal does not verify after restoring the deleted record")
    found.append("deletion")

    # reordering: swap two consecutive records of one execution (every column but the leaf index)
    a, b = rows[5], rows[6]
    ensure(a.execution_id == b.execution_id, "test setup: records 5 and 6 belong to different executions")
    _tamper(h, "UPDATE journal SET seq = -1 WHERE leaf_index = ?", (a.leaf_index,))
    _put(h, b.leaf_index, a)
    _put(h, a.leaf_index, b)
    rep = _verify(h, checkpoint=cp)
    ensure(not rep.ok, "two swapped records were not detected")
    equal(rep.first_bad.leaf_index if rep.first_bad else None, a.leaf_index, "first bad record (reordering)")
    found.append("reordering")
    _tamper(h, "UPDATE journal SET seq = -1 WHERE leaf_index = ?", (a.leaf_index,))
    _put(h, b.leaf_index, b)
    _put(h, a.leaf_index, a)
    ensure(_verify(h, checkpoint=cp).ok, "the journal does not verify after undoing the swap")

    # truncation: drop the last execution's tail
    last = runs[-1].execution_id
    tail = [r for r in rows if r.execution_id == last][-3:]
    _tamper(h, "DELETE FROM journal WHERE leaf_index >= ?", (tail[0].leaf_index,))
    rep = _verify(h, checkpoint=cp)
    ensure(not rep.ok, "a truncated journal verified against the checkpoint")
    rep2 = _verify(h, completed_executions=[last])
    ensure(not rep2.ok, "a completed execution without its execution.result record verified")
    found.append("truncation")
    return ", ".join(found) + " detected"


@check("§8", "an export bundle verifies offline with only the public key; a changed bundle does not")
def _(h: Harness) -> None:
    from ...ledger.bundle import verify_bundle
    from ...ledger.note import Signer
    from ...ledger.service import export_bundle

    runs = _populate(h)
    signer = Signer.generate("conformance.example/log")
    eid = runs[2].execution_id
    bundle = json.loads(json.dumps(export_bundle(h.store, eid, signer)))
    public = signer.verifier.to_key()
    rep = verify_bundle(bundle, public)
    ensure(rep.ok, f"an exported bundle does not verify: {rep.summary() if hasattr(rep, 'summary') else rep}")
    recs = bundle["records"]
    equal(len(recs), len(list(h.store.journal(eid))), "records in the bundle")
    forged = json.loads(json.dumps(bundle))
    body = forged["records"][1]["body"]
    forged["records"][1]["body"] = body.replace('"at":', '"at":1', 1)
    ensure(not verify_bundle(forged, public).ok, "a bundle with a changed record verified")
    dropped = json.loads(json.dumps(bundle))
    dropped["records"] = dropped["records"][:-1]
    ensure(not verify_bundle(dropped, public).ok, "a bundle without its last record verified")
    other = Signer.generate("conformance.example/log").verifier.to_key()
    ensure(not verify_bundle(bundle, other).ok, "a bundle verified with another log's key")
