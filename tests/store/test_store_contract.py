"""The Store interface, method by method, on both backends (CONTRACT §5.8, §5.6, §5.7, §6.1, §7.1–§7.2, §8)."""

from __future__ import annotations

import os

import pytest
from storekit import leaf, rec, receipt, row, step_batch

from ordinance.store import (
    CheckpointRow,
    ExecutionUpdate,
    JournalAppend,
    OutboxEvent,
    PlanImmutableError,
    StoredJournalRecord,
    StoreError,
    TokenRow,
    WriteBatch,
    open_store,
)


# -- §5.8 plan registry ----------------------------------------------------------------------------------------------
def test_register_plan_new_same_and_different_body_R_PLAN_IMMUTABLE(store):
    """§5.8 R-PLAN-IMMUTABLE: new → True, same digest → False (no-op), other digest → PlanImmutableError."""
    doc = {"plan_id": "p", "version": 2, "steps": [{"id": "a", "action": "noop"}], "note": "ünïcødé ✓"}
    assert store.register_plan("p", 2, "sha256:one", doc) is True
    assert store.register_plan("p", 2, "sha256:one", doc) is False
    with pytest.raises(PlanImmutableError) as err:
        store.register_plan("p", 2, "sha256:two", {**doc, "note": "changed"})
    assert isinstance(err.value, StoreError)
    assert (err.value.plan_id, err.value.version) == ("p", 2)
    assert (err.value.registered_digest, err.value.offered_digest) == ("sha256:one", "sha256:two")
    assert store.get_plan("p", 2) == ("sha256:one", doc)  # the registered body is untouched
    # another version of the same plan id is a different registration
    assert store.register_plan("p", 3, "sha256:two", {**doc, "version": 3}) is True
    assert store.get_plan("p", 3)[0] == "sha256:two"
    assert store.get_plan("p", 4) is None
    assert store.get_plan("missing", 1) is None


def test_plan_document_round_trips_exactly(store):
    """§5.8: the registry keeps the body: nested values, big integers, unicode, escaped NUL survive."""
    doc = {"big": 2**70, "neg": -(2**63), "f": 0.1, "s": "a\u0000b\u2028\U0001f600", "l": [None, True, {"x": []}]}
    store.register_plan("p", 1, "sha256:x", doc)
    assert store.get_plan("p", 1) == ("sha256:x", doc)


# -- executions ------------------------------------------------------------------------------------------------------
def test_execution_row_round_trips_every_field(store):
    r = row("e1", status="running", created_at=10, updated_at=11, lease_owner="w1", lease_expires_at=99,
            parent_execution_id="parent", parent_step_id="step-3",
            options={"workspace": "/w", "authorization": False}, context={"deep": {"k": [1, 2]}, "u": "é"})
    assert store.create_execution(r) is None
    assert store.get_execution("e1") == r
    assert store.get_execution("nope") is None


def test_create_execution_is_once_R_EXEC_ID_ONCE(store):
    """§5.6 R-EXEC-ID-ONCE: a known execution id writes nothing and returns the stored row."""
    first = row("e1")
    assert store.create_execution(first, step_batch("e1")) is None
    size = store.journal_size()
    again = row("e1", plan_digest="sha256:" + "b" * 64, status="running", created_at=5)
    existing = store.create_execution(again, step_batch("e1", first_seq=10, outbox=True))
    assert existing == first
    assert store.get_execution("e1") == first
    assert store.journal_size() == size
    assert len(store.receipts("e1")) == 1
    assert store.outbox_pending() == 0


def test_create_execution_and_batch_are_atomic(store):
    """§5.8: the execution row and its first batch commit together or not at all."""
    bad = WriteBatch(journal=[rec("e1", 0), rec("e1", 0)])  # duplicate (execution_id, seq) fails the batch
    with pytest.raises(StoreError, match="create_execution"):
        store.create_execution(row("e1"), bad)
    assert store.get_execution("e1") is None
    assert store.journal_size() == 0
    assert store.create_execution(row("e1"), WriteBatch(journal=[rec("e1", 0)])) is None
    assert [r.leaf_index for r in store.journal()] == [0]


def test_list_executions_newest_first_with_status_and_limit(store):
    for i, status in enumerate(["queued", "running", "success", "queued", "failure"]):
        store.create_execution(row(f"e{i}", status=status, created_at=100 + i))
    store.create_execution(row("e5b", status="queued", created_at=104))  # tie on created_at → id descending
    assert [r.execution_id for r in store.list_executions()] == ["e5b", "e4", "e3", "e2", "e1", "e0"]
    assert [r.execution_id for r in store.list_executions(limit=2)] == ["e5b", "e4"]
    assert [r.execution_id for r in store.list_executions(status="queued")] == ["e5b", "e3", "e0"]
    assert store.list_executions(status="partial") == []


def test_status_outside_execution_states_is_refused(store):
    with pytest.raises(StoreError):
        store.create_execution(row("e1", status="paused"))
    store.create_execution(row("e2"))
    with pytest.raises(StoreError):
        store.write(WriteBatch(updates=[ExecutionUpdate("e2", "bogus", 5)]))
    assert store.get_execution("e2").status == "queued"


def test_write_updates_status_and_clears_lease(store):
    store.create_execution(row("e1", status="running", lease_owner="w", lease_expires_at=500))
    store.write(WriteBatch(updates=[ExecutionUpdate("e1", "running", 20)]))
    got = store.get_execution("e1")
    assert (got.status, got.updated_at, got.lease_owner, got.lease_expires_at) == ("running", 20, "w", 500)
    store.write(WriteBatch(updates=[ExecutionUpdate("e1", "success", 30, clear_lease=True)]))
    got = store.get_execution("e1")
    assert (got.status, got.updated_at, got.lease_owner, got.lease_expires_at) == ("success", 30, None, None)


def test_update_of_unknown_execution_fails_the_whole_batch(store):
    store.create_execution(row("e1"))
    with pytest.raises(StoreError, match="store write failed: execution ghost does not exist"):
        store.write(WriteBatch(journal=[rec("e1", 0)], updates=[ExecutionUpdate("ghost", "success", 1)]))
    assert store.journal_size() == 0


def test_empty_batch_is_a_no_op(store):
    store.write(WriteBatch())
    assert store.journal_size() == 0


# -- §8 journal ------------------------------------------------------------------------------------------------------
def test_write_assigns_gap_free_leaf_indices_and_rfc6962_leaf_hashes(store):
    """§8: every record is a leaf of one store-wide log; leaf hash = sha256(0x00 ‖ body); bodies byte-identical."""
    store.create_execution(row("a"))
    store.create_execution(row("b"))
    bodies = [os.urandom(n) for n in (0, 1, 400, 5000)] + [b"\x00\xff\xfe not utf-8 \x80"]
    store.write(WriteBatch(journal=[rec("a", i, body) for i, body in enumerate(bodies[:3])]))
    store.write(WriteBatch(journal=[rec("b", 0, bodies[3]), rec("a", 3, bodies[4])]))
    got = list(store.journal())
    assert [r.leaf_index for r in got] == [0, 1, 2, 3, 4]
    assert [r.body for r in got] == [bodies[0], bodies[1], bodies[2], bodies[3], bodies[4]]
    assert all(type(r.body) is bytes for r in got)
    assert [(r.execution_id, r.seq) for r in got] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("a", 3)]
    assert got[3] == StoredJournalRecord(3, "b", 0, "step.completed", bodies[3], rec("b", 0, bodies[3]).entry_hash)
    assert store.journal_size() == 5
    assert store.leaf_hashes() == [leaf(b) for b in [bodies[0], bodies[1], bodies[2], bodies[3], bodies[4]]]
    assert store.leaf_hashes(2) == [leaf(bodies[0]), leaf(bodies[1])]
    assert store.leaf_hashes(0) == []
    assert len(store.leaf_hashes(99)) == 5  # never more than exists
    assert all(len(h) == 32 for h in store.leaf_hashes())


def test_journal_filters_by_execution_and_start(store):
    for e in ("a", "b"):
        store.create_execution(row(e))
    for i in range(4):
        store.write(WriteBatch(journal=[rec("a", i), rec("b", i)]))
    assert [(r.leaf_index, r.seq) for r in store.journal("a")] == [(0, 0), (2, 1), (4, 2), (6, 3)]
    assert [r.leaf_index for r in store.journal("b", start=3)] == [3, 5, 7]
    assert [r.leaf_index for r in store.journal(start=5)] == [5, 6, 7]
    assert list(store.journal(start=8)) == []
    assert list(store.journal("nobody")) == []


def test_journal_streams_in_chunks_and_does_not_block_writers(store):
    """§8: journal() fetches in chunks; a half-consumed iterator holds no lock, so writes proceed meanwhile."""
    store.journal_chunk = 7
    store.create_execution(row("a"))
    store.write(WriteBatch(journal=[rec("a", i) for i in range(30)]))
    it = store.journal()
    head = [next(it) for _ in range(10)]
    store.write(WriteBatch(journal=[rec("a", 30 + i) for i in range(5)]))  # must not deadlock
    rest = list(it)
    assert [r.leaf_index for r in head + rest] == list(range(35))
    assert [r.seq for r in store.journal("a", start=33)] == [33, 34]


def test_journal_tail(store):
    store.create_execution(row("a"))
    assert store.journal_tail("a") is None
    store.write(WriteBatch(journal=[rec("a", 0), rec("a", 1)]))
    assert store.journal_tail("a") == (1, rec("a", 1).entry_hash)


def test_duplicate_seq_is_refused_and_rolls_back(store):
    """§8: one chain per execution: (execution_id, seq) is unique; a refused batch leaves no leaf behind."""
    store.create_execution(row("a"))
    store.write(WriteBatch(journal=[rec("a", 0)]))
    with pytest.raises(StoreError, match="store write failed"):
        store.write(WriteBatch(journal=[rec("a", 1), rec("a", 0)], receipts=[receipt("op", "a", "k")]))
    assert store.journal_size() == 1
    assert store.find_receipt("k") is None
    store.write(WriteBatch(journal=[rec("a", 1)]))
    assert [r.leaf_index for r in store.journal()] == [0, 1]  # the refused batch consumed no index


def test_failed_write_leaves_nothing_half_written(store):
    """§5.8: one transaction per write: a failure in the last part undoes the journal, receipts and updates."""
    store.create_execution(row("a", status="running"))
    store.write(WriteBatch(results=[("a", {"status": "success"}, "sha256:r")]))
    bad = step_batch("a", outbox=True)
    bad.updates.append(ExecutionUpdate("a", "success", 9, clear_lease=True))
    bad.results.append(("a", {"status": "again"}, "sha256:other"))  # a result is written once
    with pytest.raises(StoreError, match="store write failed"):
        store.write(bad)
    assert store.journal_size() == 0
    assert store.receipts("a") == []
    assert store.outbox_pending() == 0
    assert store.get_execution("a").status == "running"
    assert store.get_result("a") == {"status": "success"}


def test_journal_body_must_be_bytes(store):
    store.create_execution(row("a"))
    bad = WriteBatch(journal=[JournalAppend("a", 0, "k", "text, not bytes", "sha256:x")])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="body must be bytes"):
        store.write(bad)


# -- results ---------------------------------------------------------------------------------------------------------
def test_results_round_trip(store):
    store.create_execution(row("a"))
    doc = {"execution_id": "a", "status": "success", "outputs": {"x": [1, 2.5, "é"]}}
    store.write(WriteBatch(results=[("a", doc, "sha256:r")]))
    assert store.get_result("a") == doc
    assert store.get_result("b") is None


def test_results_given_as_canonical_bytes_are_kept_verbatim(store):
    """The engine hands over the canonical bytes it digested (§5.6 persist_result): stored as they are."""
    from ordinance.contract.canonical import canonical_bytes

    store.create_execution(row("a"))
    store.create_execution(row("b"))
    doc = {"status": "success", "z": [1, 2.5, "é\u2028"], "a": None}
    store.write(WriteBatch(results=[("a", canonical_bytes(doc), "sha256:r")]))
    assert store.get_result("a") == doc
    with pytest.raises(StoreError, match="not UTF-8"):
        store.write(WriteBatch(results=[("b", b"\xff{}", "sha256:r")]))
    assert store.get_result("b") is None


# -- leases and claims (§5.8 recovery) -------------------------------------------------------------------------------
def test_renew_lease_only_for_the_owner_of_a_running_execution(store):
    store.create_execution(row("a", status="running", lease_owner="w1", lease_expires_at=100))
    store.create_execution(row("q", status="queued", lease_owner="w1", lease_expires_at=100))
    assert store.renew_lease("a", "w1", 200) is True
    assert store.get_execution("a").lease_expires_at == 200
    assert store.renew_lease("a", "w2", 300) is False
    assert store.renew_lease("q", "w1", 300) is False
    assert store.renew_lease("missing", "w1", 300) is False
    store.write(WriteBatch(updates=[ExecutionUpdate("a", "success", 5, clear_lease=True)]))
    assert store.renew_lease("a", "w1", 400) is False


def test_claim_queued_takes_the_oldest_first(store):
    assert store.claim_queued("w", now=1, lease_ms=10) is None
    store.create_execution(row("c", created_at=30))
    store.create_execution(row("b", created_at=20))
    store.create_execution(row("a2", created_at=20))
    store.create_execution(row("r", status="running", created_at=1))
    got = store.claim_queued("w1", now=500, lease_ms=1000)
    assert (got.execution_id, got.status, got.lease_owner, got.lease_expires_at, got.updated_at) == (
        "a2", "running", "w1", 1500, 500)
    assert store.get_execution("a2") == got
    assert [store.claim_queued("w2", 600, 10).execution_id for _ in range(2)] == ["b", "c"]
    assert store.claim_queued("w2", 700, 10) is None


def test_claim_expired_takes_over_only_expired_running_leases(store):
    store.create_execution(row("x1", status="running", lease_owner="dead", lease_expires_at=100))
    store.create_execution(row("x2", status="running", lease_owner="dead", lease_expires_at=50))
    store.create_execution(row("x3", status="running", lease_owner="dead", lease_expires_at=70))
    store.create_execution(row("live", status="running", lease_owner="alive", lease_expires_at=1000))
    store.create_execution(row("edge", status="running", lease_owner="alive", lease_expires_at=500))
    store.create_execution(row("done", status="success", lease_owner="dead", lease_expires_at=1))
    store.create_execution(row("q", status="queued", lease_owner=None, lease_expires_at=1))
    first = store.claim_expired(now=500, owner="rec", lease_ms=60_000, limit=2)
    assert sorted(r.execution_id for r in first) == ["x2", "x3"]  # the longest-expired first
    assert all((r.lease_owner, r.lease_expires_at, r.status) == ("rec", 60_500, "running") for r in first)
    rest = store.claim_expired(now=500, owner="rec2", lease_ms=60_000)
    assert [r.execution_id for r in rest] == ["x1"]
    assert store.claim_expired(now=500, owner="rec3", lease_ms=60_000) == []
    assert store.get_execution("x2").lease_owner == "rec"
    assert store.get_execution("live").lease_owner == "alive"
    assert store.renew_lease("x2", "dead", 10**9) is False  # the old owner lost it


# -- §7.1 / §7.2 receipts --------------------------------------------------------------------------------------------
def test_find_receipt_returns_the_newest_succeeded_receipt(store):
    """§7.2: idempotency lookup: newest succeeded receipt with that key, with its stored output."""
    store.create_execution(row("a"))
    assert store.find_receipt("k") is None
    store.write(WriteBatch(receipts=[receipt("op1", "a", "k", output={"v": 1})]))
    store.write(WriteBatch(receipts=[receipt("op2", "a", "k", status="failed", output=None)]))
    assert store.find_receipt("k")["output"] == {"v": 1}
    store.write(WriteBatch(receipts=[receipt("op3", "a", "k", output={"v": 3}), receipt("op4", "a", "other")]))
    assert store.find_receipt("k") == receipt("op3", "a", "k", output={"v": 3})
    assert store.find_receipt("missing") is None
    assert [r["operation_id"] for r in store.receipts("a")] == ["op1", "op2", "op3", "op4"]
    assert store.receipts("nobody") == []


def test_receipt_with_the_same_operation_id_is_updated_in_place(store):
    """§7.4: a receipt is rewritten under its operation_id (e.g. its compensation outcome); order is kept."""
    store.create_execution(row("a"))
    store.write(WriteBatch(receipts=[receipt("op1", "a", "k1"), receipt("op2", "a", "k2")]))
    store.write(WriteBatch(receipts=[receipt("op1", "a", "k1", status="compensated", compensation_verified=True)]))
    docs = store.receipts("a")
    assert [d["operation_id"] for d in docs] == ["op1", "op2"]
    assert docs[0]["status"] == "compensated" and docs[0]["compensation_verified"] is True
    assert store.find_receipt("k1") is None


def test_receipt_without_required_keys_is_refused(store):
    bad = receipt("op1", "a", "k")
    del bad["step_id"]
    with pytest.raises(StoreError, match="lacks step_id"):
        store.write(WriteBatch(receipts=[bad]))
    with pytest.raises(StoreError, match="not a JSON document"):
        store.write(WriteBatch(receipts=[receipt("op1", "a", "k", output=object())]))
    with pytest.raises(StoreError, match="not a JSON document"):
        store.write(WriteBatch(receipts=[receipt("op1", "a", "k", output=float("nan"))]))


# -- §5.7 outbox -----------------------------------------------------------------------------------------------------
def test_outbox_claim_done_retry_pending(store):
    """§5.7: the durable outbox: claimed events are leased for 30 s; done/retry bookkeeping; pending count."""
    store.create_execution(row("a"))
    events = [OutboxEvent(f"ev{i}", "a", {"specversion": "1.0", "id": f"ev{i}", "type": "ordinance.x"})
              for i in range(3)]
    store.write(WriteBatch(outbox=events))
    assert store.outbox_pending() == 3
    claimed = store.outbox_claim(now=1_000, limit=2)
    assert [(e.event_id, attempts) for _, e, attempts in claimed] == [("ev0", 0), ("ev1", 0)]
    assert claimed[0][1] == events[0]
    (i0, _, _), (i1, _, _) = claimed
    assert [e.event_id for _, e, _ in store.outbox_claim(now=1_000)] == ["ev2"]
    assert store.outbox_claim(now=1_000) == []  # all leased
    store.outbox_done(i0, now=1_500)
    store.outbox_retry(i1, next_at=5_000, error="HTTP 503")
    assert store.outbox_pending() == 3 - 1
    assert store.outbox_claim(now=4_999) == []
    again = store.outbox_claim(now=5_000)
    assert [(i, e.event_id, n) for i, e, n in again] == [(i1, "ev1", 1)]
    assert [e.event_id for _, e, _ in store.outbox_claim(now=1_000 + 30_000)] == ["ev2"]  # claim lease lapsed
    store.outbox_retry(i1, next_at=6_000, error="timeout")
    assert [n for _, e, n in store.outbox_claim(now=6_000) if e.event_id == "ev1"] == [2]


# -- §6.1 tokens -----------------------------------------------------------------------------------------------------
def test_tokens_put_lookup_revoke_list(store):
    """§6.1: only the sha256 of a token is kept, with user, roles, scopes, expiry and revocation."""
    t1 = TokenRow("t1", "sha256:" + "1" * 64, "alice", ["operator"], ["fs.*", "git.status"], 100, 10_000)
    t2 = TokenRow("t2", "sha256:" + "2" * 64, "bob", [], [], 50, 20_000)
    store.put_token(t1)
    store.put_token(t2)
    assert store.token_by_hash(t1.token_hash) == t1
    assert store.token_by_hash("sha256:" + "0" * 64) is None
    assert store.list_tokens() == [t2, t1]  # oldest first
    assert store.revoke_token("t1") is True
    assert store.revoke_token("t1") is True  # idempotent
    assert store.revoke_token("nope") is False
    assert store.token_by_hash(t1.token_hash).revoked is True
    assert store.token_by_hash(t2.token_hash).revoked is False
    with pytest.raises(StoreError, match="put_token"):
        store.put_token(TokenRow("t1", "sha256:" + "3" * 64, "mallory", ["admin"], ["*"], 1, 2))
    with pytest.raises(StoreError, match="put_token"):
        store.put_token(TokenRow("t3", t2.token_hash, "mallory", ["admin"], ["*"], 1, 2))
    assert store.token_by_hash(t2.token_hash).user_id == "bob"


# -- §8 checkpoints --------------------------------------------------------------------------------------------------
def test_checkpoints_latest_is_the_largest_tree(store):
    """§8: signed checkpoints are kept; the latest is the one covering the largest tree."""
    assert store.latest_checkpoint() is None
    c5 = CheckpointRow(5, os.urandom(32), "origin\n5\nroot\n\n— sig", 100)
    c9 = CheckpointRow(9, os.urandom(32), "origin\n9\nroot\n", 200)
    store.save_checkpoint(c5)
    store.save_checkpoint(c9)
    assert store.latest_checkpoint() == c9
    store.save_checkpoint(CheckpointRow(7, os.urandom(32), "older tree", 300))
    assert store.latest_checkpoint() == c9
    c9b = CheckpointRow(9, c9.root_hash, "re-signed", 400)
    store.save_checkpoint(c9b)
    assert store.latest_checkpoint() == c9b


# -- lifecycle and errors --------------------------------------------------------------------------------------------
def test_closed_store_raises_store_error_naming_the_operation(backend):
    s = backend.open()
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="store write failed: .*closed"):
        s.write(WriteBatch(journal=[rec("a", 0)]))
    with pytest.raises(StoreError, match="store get_execution failed"):
        s.get_execution("a")


def test_open_store_by_url_reaches_the_same_data(backend, store):
    store.register_plan("p", 1, "sha256:x", {"a": 1})
    other = open_store(backend.url)
    try:
        assert type(other) is type(store)
        assert other.get_plan("p", 1) == ("sha256:x", {"a": 1})
    finally:
        other.close()


def test_key_dir(backend, store):
    if backend.name == "sqlite":
        assert store.key_dir == str(backend.path.parent)
    else:
        assert store.key_dir is None
