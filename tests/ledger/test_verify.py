"""§8: full journal verification reports changes, deletions, insertions, reorderings and truncation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ordinance.ledger import (
    EMPTY_ROOT,
    RESULT_KIND,
    ZERO_HASH,
    Checkpoint,
    MerkleTree,
    StoredRecord,
    make_record,
    parse_body,
    scan_record,
    verify_consistency_with,
    verify_log,
    verify_scanned,
)
from ordinance.ledger.synthetic import SyntheticLog, synthetic_log

ORIGIN = "ordinance.test/journal"


def _cp(records: list[StoredRecord]) -> Checkpoint:
    tree = MerkleTree(r.leaf_hash for r in records)
    return Checkpoint(ORIGIN, tree.size, tree.root())


def _chain(n: int, eid: str = "exec-a", start_leaf: int = 0) -> list[StoredRecord]:
    out, prev = [], ZERO_HASH
    for seq in range(n):
        kind = RESULT_KIND if seq == n - 1 else "step.finished"
        rec = make_record(eid, seq, kind, 1000 + seq, {"i": seq}, prev, leaf_index=start_leaf + seq)
        out.append(rec)
        prev = rec.entry_hash
    return out


def test_s8_clean_log_verifies(journal: SyntheticLog, journal_checkpoint: Checkpoint) -> None:
    """§8: an untouched log verifies against its checkpoint; the report carries size and root."""
    report = verify_log(journal.records, checkpoint=journal_checkpoint, completed_executions=journal.completed)
    assert report.ok, report.summary()
    assert report.first_bad is None and report.problems == []
    assert report.records_checked == report.tree_size == 1000
    assert report.executions == 7
    assert report.root_hash == journal_checkpoint.root_hash
    assert report.summary().startswith("OK: 1000 records in 7 executions")
    json.dumps(report.to_dict())


def test_s8_log_may_grow_past_the_checkpoint(journal: SyntheticLog) -> None:
    """§8: records appended after the checkpoint are not a problem; the prefix must still match."""
    cp = _cp(journal.records[:600])
    report = verify_log(journal.records, checkpoint=cp)
    assert report.ok and report.tree_size == 1000


def test_s8_empty_log() -> None:
    """§8: the empty log verifies and has the empty root."""
    report = verify_log([], checkpoint=Checkpoint(ORIGIN, 0, EMPTY_ROOT))
    assert report.ok and report.tree_size == 0 and report.root_hash == EMPTY_ROOT


def test_s8_reasons_name_the_defect() -> None:
    """§8: each kind of defect has a precise reason on the right record."""
    recs = _chain(8)
    # seq gap: drop seq 5 and 6 and renumber leaves
    gap = [*recs[:5], *(r.with_leaf_index(i) for i, r in enumerate(recs[7:], 5))]
    fb = verify_log(gap).first_bad
    assert fb is not None and fb.reason == "seq gap: expected 5, found 7" and fb.leaf_index == 5 and fb.seq == 7

    # prev link: seq 5 re-made with a wrong prev hash
    bad5 = make_record("exec-a", 5, "step.finished", 1, {"i": 5}, ZERO_HASH, leaf_index=5)
    fb = verify_log([*recs[:5], bad5, *recs[6:]]).first_bad
    assert fb is not None and fb.reason == "prev_entry_hash does not link to seq 4 (leaf 4)" and fb.leaf_index == 5

    # row disagrees with its body
    row = dataclasses.replace(recs[3], execution_id="exec-b")
    fb = verify_log([*recs[:3], row, *recs[4:]]).first_bad
    assert (
        fb is not None and fb.reason.startswith("record body execution_id differs from its row") and fb.leaf_index == 3
    )
    row = dataclasses.replace(recs[3], seq=9)
    assert verify_log([*recs[:3], row, *recs[4:]]).first_bad.reason.startswith("record body seq differs")
    row = dataclasses.replace(recs[3], kind="other")
    assert verify_log([*recs[:3], row, *recs[4:]]).first_bad.reason.startswith("record body kind")

    # first record must link to the zero hash
    first = make_record("exec-a", 0, "step.finished", 1, {"i": 0}, "sha256:" + "1" * 64, leaf_index=0)
    fb = verify_log([first]).first_bad
    assert fb is not None and "zero hash" in fb.reason

    # body overwritten with junk, row untouched
    junk = dataclasses.replace(recs[2], body=b"{not json")
    report = verify_log([*recs[:2], junk, *recs[3:]])
    assert report.problems[0].reason == "entry_hash does not match body"
    assert "not valid JSON" in report.problems[1].reason
    assert [p.leaf_index for p in report.problems] == [2, 2]  # the chain carries on from the row's entry_hash

    # a record after the execution's result
    extra = make_record("exec-a", 8, "step.finished", 1, {}, recs[7].entry_hash, leaf_index=8)
    fb = verify_log([*recs, extra]).first_bad
    assert fb is not None and fb.leaf_index == 8 and "follows the execution's final" in fb.reason

    # leaf index problems
    assert verify_log([recs[0], recs[1], recs[1]]).first_bad.reason.startswith("leaf index 1 is repeated")
    assert verify_log([recs[0], recs[2]]).first_bad.reason == "leaf index gap: expected 1, found 2 (leaf 1 is missing)"
    assert (
        verify_log([dataclasses.replace(recs[0], leaf_index=None)]).first_bad.reason == "record has no valid leaf index"
    )


def test_s8_completed_execution_missing_its_result_is_truncated() -> None:
    """§8: a completed execution whose result record is gone is reported as truncated."""
    recs = _chain(6)
    report = verify_log(recs[:4], completed_executions={"exec-a", "exec-z"})
    assert not report.ok
    reasons = {p.execution_id: p.reason for p in report.problems}
    assert "tail is missing (truncated)" in reasons["exec-a"]
    assert reasons["exec-z"] == "completed execution has no records"
    assert verify_log(recs, completed_executions={"exec-a"}).ok


def test_s8_root_mismatch_and_problem_cap() -> None:
    """§8: a wrong checkpoint root is reported; findings are capped but counted."""
    recs = _chain(50)
    report = verify_log(recs, checkpoint=Checkpoint(ORIGIN, 50, b"\x00" * 32))
    assert not report.ok and report.first_bad.reason.startswith("tree root differs from checkpoint")
    assert report.first_bad.leaf_index is None
    broken = [dataclasses.replace(r, entry_hash=ZERO_HASH) for r in recs]
    report = verify_log(broken, max_problems=10)
    assert len(report.problems) == 10 and report.problems_omitted > 0 and not report.ok
    assert f"and {9 + report.problems_omitted} more" in report.summary()


# --------------------------------------------------------------------------------------------
# The tamper suite: every record of a 1000-record, 7-execution interleaved log.
# Unchanged records reuse their scan (scanning is per-record and pure), so each case costs
# one pass over the chains plus one tree: O(n) per case, about 1 ms.


@pytest.fixture(scope="module")
def tamper(journal: SyntheticLog, journal_tree: MerkleTree, journal_checkpoint: Checkpoint):
    recs = journal.records
    scans = [scan_record(r) for r in recs]
    plus = [s._replace(record=s.record.with_leaf_index(i + 1)) for i, s in enumerate(scans)]
    minus = [s._replace(record=s.record.with_leaf_index(i - 1)) for i, s in enumerate(scans)]
    anchors = [Checkpoint(ORIGIN, k, journal_tree.root(k)) for k in range(1, journal_tree.size + 1)]
    return recs, scans, plus, minus, anchors, journal_checkpoint, journal.completed


def _check(failures: list[str], report, want: int, what: str, reason: str | None = None) -> None:
    fb = report.first_bad
    if report.ok or fb is None or fb.leaf_index != want or (reason is not None and not fb.reason.startswith(reason)):
        failures.append(f"{what}: want leaf {want}{' / ' + reason if reason else ''}, got {fb}")


def _detected_without_anchors(report) -> bool:
    """Some finding does not come from anchor localisation, so a single checkpoint detects it too."""
    return any(not p.reason.startswith("tree differs from checkpoint") for p in report.problems)


def test_s8_tamper_changed_byte_in_every_record(tamper) -> None:
    """§8 change: flipping a byte of any record's body names that record (single checkpoint)."""
    recs, scans, _, _, _anchors, cp, completed = tamper
    failures: list[str] = []
    for i, rec in enumerate(recs):
        body = bytearray(rec.body)
        body[(i * 37) % len(body)] ^= 0x01
        case = list(scans)
        case[i] = scan_record(dataclasses.replace(rec, body=bytes(body)))
        report = verify_scanned(case, checkpoint=cp, completed_executions=completed)
        _check(failures, report, i, f"byte changed in leaf {i}", "entry_hash does not match body")
        if report.first_bad and (report.first_bad.execution_id, report.first_bad.seq) != (rec.execution_id, rec.seq):
            failures.append(f"leaf {i}: wrong record named {report.first_bad}")
    assert not failures, failures[:5]


def test_s8_tamper_changed_body_with_recomputed_hash(tamper) -> None:
    """§8 change: a rewritten body with a matching entry_hash is pinned to its leaf (with anchors)."""
    recs, scans, _, _, anchors, cp, completed = tamper
    failures: list[str] = []
    for i, rec in enumerate(recs):
        obj = parse_body(rec.body)
        obj["data"] = {**obj["data"], "tampered": True}
        forged = make_record(
            rec.execution_id,
            rec.seq,
            rec.kind,
            obj["at"],
            obj["data"],
            obj["prev_entry_hash"],
            step_id=obj.get("step_id"),
            attempt=obj.get("attempt"),
            leaf_index=i,
        )
        case = list(scans)
        case[i] = scan_record(forged)
        report = verify_scanned(case, checkpoint=cp, completed_executions=completed, anchors=anchors)
        _check(failures, report, i, f"rewritten leaf {i}")
        if not _detected_without_anchors(report):
            failures.append(f"rewritten leaf {i}: only anchors detect it")
    assert not failures, failures[:5]


def test_s8_tamper_deleted_record(tamper) -> None:
    """§8 deletion: removing any record's row names its leaf as missing (single checkpoint)."""
    recs, scans, _, _minus, _anchors, cp, completed = tamper
    failures: list[str] = []
    n = len(recs)
    for i in range(n):
        report = verify_scanned(scans[:i] + scans[i + 1 :], checkpoint=cp, completed_executions=completed)
        _check(
            failures, report, i, f"deleted leaf {i}", "leaf index gap" if i < n - 1 else "log shorter than checkpoint"
        )
    assert not failures, failures[:5]


def test_s8_tamper_deleted_record_hidden_by_renumbering(tamper) -> None:
    """§8 deletion: removing a record and renumbering the rest is detected and pinned (with anchors)."""
    recs, scans, _, minus, anchors, cp, completed = tamper
    failures: list[str] = []
    for i in range(len(recs)):
        report = verify_scanned(
            scans[:i] + minus[i + 1 :], checkpoint=cp, completed_executions=completed, anchors=anchors
        )
        _check(failures, report, i, f"deleted+renumbered leaf {i}")
        if not _detected_without_anchors(report):
            failures.append(f"deleted leaf {i}: only anchors detect it")
    assert not failures, failures[:5]


def test_s8_tamper_inserted_forged_record(tamper) -> None:
    """§8 insertion: a forged, self-consistent record inserted before any record is pinned (with anchors)."""
    recs, scans, plus, _, anchors, cp, completed = tamper
    failures: list[str] = []
    for i, rec in enumerate(recs):
        if i % 2 == 0:  # a fork: same execution and seq, correctly linked to the predecessor
            obj = parse_body(rec.body)
            forged = make_record(
                rec.execution_id, rec.seq, rec.kind, obj["at"], {"forged": i}, obj["prev_entry_hash"], leaf_index=i
            )
        else:  # a whole new, internally valid execution
            forged = make_record(f"forged-{i}", 0, "execution.started", 1, {"forged": i}, ZERO_HASH, leaf_index=i)
        case = scans[:i] + [scan_record(forged)] + plus[i:]
        report = verify_scanned(case, checkpoint=cp, completed_executions=completed, anchors=anchors)
        _check(failures, report, i, f"forged record inserted at leaf {i}")
        if not _detected_without_anchors(report):
            failures.append(f"insert at {i}: only anchors detect it")
    assert not failures, failures[:5]


def test_s8_tamper_swapped_neighbours(tamper) -> None:
    """§8 reordering: swapping any record with its neighbour is pinned to the first of the two."""
    recs, scans, plus, minus, anchors, cp, completed = tamper
    failures: list[str] = []
    same_execution = 0
    for i in range(len(recs) - 1):
        case = scans[:i] + [minus[i + 1], plus[i]] + scans[i + 2 :]
        report = verify_scanned(case, checkpoint=cp, completed_executions=completed, anchors=anchors)
        _check(failures, report, i, f"swap {i}<->{i + 1}")
        if not _detected_without_anchors(report):
            failures.append(f"swap {i}: only anchors detect it")
        if recs[i].execution_id == recs[i + 1].execution_id:  # the chain alone pins it
            same_execution += 1
            plain = verify_scanned(case, checkpoint=cp)
            _check(failures, plain, i, f"same-execution swap {i} without anchors", "seq gap")
    assert same_execution > 50
    assert not failures, failures[:5]


def test_s8_tamper_truncated_at_every_point(tamper) -> None:
    """§8 truncation: cutting the log at any point names the first missing leaf (single checkpoint)."""
    recs, scans, _, _, _, cp, completed = tamper
    failures: list[str] = []
    for k in range(len(recs)):
        report = verify_scanned(scans[:k], checkpoint=cp, completed_executions=completed)
        _check(failures, report, k, f"truncated to {k}", "log shorter than checkpoint (truncated)")
        if k and not any(p.leaf_index is None and "truncated" in p.reason for p in report.problems):
            failures.append(f"truncated to {k}: no execution reported without its result")
    assert not failures, failures[:5]


def test_s8_truncation_detected_without_checkpoint(journal: SyntheticLog) -> None:
    """§8 truncation: with no checkpoint, completed executions missing their result still fail."""
    for k in range(0, 1000, 53):
        report = verify_log(journal.records[:k], completed_executions=journal.completed)
        assert not report.ok


def test_s8_verify_log_agrees_with_scanned_path(tamper) -> None:
    """§8: verify_log (scanning inline) reports exactly what verify_scanned reports."""
    recs, _scans, _plus, _, anchors, cp, completed = tamper
    for i in range(0, len(recs), 97):
        body = bytearray(recs[i].body)
        body[10] ^= 0x01
        tampered = list(recs)
        tampered[i] = dataclasses.replace(recs[i], body=bytes(body))
        a = verify_log(tampered, checkpoint=cp, completed_executions=completed, anchors=anchors)
        b = verify_scanned(map(scan_record, tampered), checkpoint=cp, completed_executions=completed, anchors=anchors)
        assert a == b and a.first_bad.leaf_index == i
        dup = [*recs[:i], recs[i], *recs[i:]]  # duplicate row at the same leaf index
        report = verify_log(dup, checkpoint=cp)
        assert report.first_bad.leaf_index == i and "repeated" in report.first_bad.reason


def test_s8_anchor_localisation_is_coarse_with_few_anchors(tamper) -> None:
    """§8: with sparse anchors the report names the range holding the first change."""
    recs, scans, _plus, _minus, anchors, cp, _completed = tamper
    sparse = [a for a in anchors if a.tree_size % 100 == 0]
    i = 432
    other = next(j for j in range(i + 1, len(recs)) if recs[j].execution_id != recs[i].execution_id)
    case = list(scans)
    case[i], case[other] = (
        scans[other]._replace(record=scans[other].record.with_leaf_index(i)),
        scans[i]._replace(record=scans[i].record.with_leaf_index(other)),
    )
    report = verify_scanned(case, checkpoint=cp, anchors=sparse)
    located = [p for p in report.problems if p.reason.startswith("tree differs from checkpoint")]
    assert located and located[0].leaf_index == 400 and "400..499" in located[0].reason


def test_s8_verify_since_consistency(journal: SyntheticLog) -> None:
    """§8 "verify --since": the current log must extend an older checkpoint."""
    hs = [r.leaf_hash for r in journal.records]
    old = _cp(journal.records[:400])
    ok = verify_consistency_with(old, hs)
    assert ok.ok and ok.new_size == 1000 and ok.proof and ok.reason is None
    assert verify_consistency_with(old, MerkleTree(hs), new_checkpoint=_cp(journal.records)).ok
    assert verify_consistency_with(Checkpoint(ORIGIN, 0, EMPTY_ROOT), hs).ok
    assert not verify_consistency_with(Checkpoint(ORIGIN, 0, b"\x01" * 32), hs).ok

    truncated = verify_consistency_with(old, hs[:300])
    assert not truncated.ok and "truncated" in truncated.reason

    rewritten = list(hs)
    rewritten[123] = b"\x00" * 32
    bad = verify_consistency_with(old, rewritten)
    assert not bad.ok and "history was rewritten" in bad.reason
    json.dumps(bad.to_dict())

    stale_new = verify_consistency_with(old, rewritten, new_checkpoint=_cp(journal.records))
    assert not stale_new.ok and "differs from the new checkpoint" in stale_new.reason
    shrunk = verify_consistency_with(_cp(journal.records), hs, new_checkpoint=old)
    assert not shrunk.ok and "truncated" in shrunk.reason


def test_s8_synthetic_logs_are_valid() -> None:
    """§8: the synthetic generator used by tests and benches produces valid logs."""
    for executions, interleave in [(1, True), (3, False), (20, True)]:
        log = synthetic_log(200, executions=executions, seed=executions, interleave=interleave)
        assert verify_log(log.records, checkpoint=_cp(log.records), completed_executions=log.completed).ok
    with pytest.raises(ValueError):
        synthetic_log(3, executions=2)
