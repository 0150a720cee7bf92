"""§8 over real stores (SQLite and PostgreSQL): checkpoints, verification, proofs, bundles and tampering.

The journals here are written by real engine runs (no synthetic records).  The tamper suite works on a
log of more than 1000 records, with two executions interleaved as concurrent runs write them, and a
signed checkpoint after every run:

* exhaustively, on the rows read back from the database and changed in memory (every record: a
  one-byte change of its body, its deletion, a forged record inserted before it, a swap with its
  neighbour, truncation at it), each verified by the same code path as ``journal verify``;
* through the database itself (raw SQL on the SQLite file / the PostgreSQL schema) and the real
  ``ordinance journal verify`` command, for a handful of cases of each kind.

Each case must be detected and the report must name the first bad record.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from support import ENV, cli, make_plan, sid

from ordinance.ledger import (
    RESULT_KIND,
    ZERO_HASH,
    Checkpoint,
    MerkleTree,
    keys,
    make_record,
    open_checkpoint,
    record_leaf_hash,
    scan_record,
    service,
    verify_bundle,
    verify_inclusion,
)


class Row(NamedTuple):
    leaf_index: int
    execution_id: str
    seq: int
    kind: str
    body: bytes
    entry_hash: str


def chain_plan(n: int, action: str = "control.noop", **fields: Any) -> dict[str, Any]:
    steps = []
    for i in range(1, n + 1):
        step: dict[str, Any] = {"action": action}
        if action == "control.echo":
            step["payload"] = {"value": i}
        if i > 1:
            step["depends_on"] = [sid(i - 1)]
        steps.append(step)
    return make_plan(*steps, id=str(uuid.uuid4()), **fields)


def fill(store, workspace, signer, *, big: bool = True) -> list[str]:
    """Real engine runs; a checkpoint after each.  Returns the execution ids."""
    from ordinance.engine import Engine

    engine = Engine(store, workspace=str(workspace))
    ids: list[str] = []

    async def pair(p1: dict[str, Any], p2: dict[str, Any]) -> None:
        r1, r2 = await asyncio.gather(engine.run_async(p1, environment=ENV), engine.run_async(p2, environment=ENV))
        ids.extend([r1.execution_id, r2.execution_id])
        await engine.aclose()

    n = 120 if big else 4  # two journal records per step (+ admission and outcome records): > 1000 in all
    asyncio.run(pair(chain_plan(n), chain_plan(n, "control.echo")))  # interleaved, as concurrent runs write
    service.checkpoint(store, signer)
    for plan, env in (
        (chain_plan(n), ENV),
        (make_plan({"action": "control.noop"}, {"action": "control.fail", "depends_on": [sid(1)]}, id=str(uuid.uuid4())), ENV),
        (chain_plan(2), {}),  # rejected at admission: TARGET missing from the environment
        (chain_plan(n, "control.echo"), ENV),
    ):
        ids.append(engine.run(plan, environment=env).execution_id)
        service.checkpoint(store, signer)
    return ids


@pytest.fixture(autouse=True)
def _key_dir(tmp_path, monkeypatch):
    """Never write a key to the real ~/.config: PostgreSQL stores have no directory of their own."""
    monkeypatch.setenv("ORDINANCE_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("ORDINANCE_LOG_ORIGIN", raising=False)


# --------------------------------------------------------------------------------------------------------------
# small round trips over the ``store`` fixture (both backends)
# --------------------------------------------------------------------------------------------------------------


def test_s8_signing_key_is_made_once_private_and_named_by_origin(store, tmp_path, monkeypatch) -> None:
    """§8: the Ed25519 key is made on first use (mode 0600), reused after, and refused when others may read it."""
    monkeypatch.setenv("ORDINANCE_LOG_ORIGIN", "ordinance.test/log-a")
    first = keys.load_signer(store)
    assert first.created and first.path == tmp_path / "keys" / keys.KEY_FILE_NAME
    assert oct(os.stat(first.path).st_mode & 0o777) == "0o600"
    again = keys.load_signer(store)
    assert not again.created and again.signer.to_key() == first.signer.to_key()
    assert first.origin == "ordinance.test/log-a"
    assert keys.read_verifier_key(first.verifier.to_key()) == first.verifier
    os.chmod(first.path, 0o640)
    with pytest.raises(keys.SigningKeyError, match="group or others"):
        keys.load_signer(store)
    os.chmod(first.path, 0o600)
    monkeypatch.setenv("ORDINANCE_LOG_ORIGIN", "ordinance.test/other")
    with pytest.raises(keys.SigningKeyError, match="belongs to log"):
        keys.load_signer(store)


def test_s8_key_lives_beside_a_sqlite_store_without_key_dir(sqlite_store, monkeypatch) -> None:
    """§8: without ORDINANCE_KEY_DIR the key of a SQLite store is a file beside the database."""
    monkeypatch.delenv("ORDINANCE_KEY_DIR")
    info = keys.load_signer(sqlite_store)
    assert info.path.parent == __import__("pathlib").Path(sqlite_store.key_dir)
    assert info.origin.startswith("ordinance/")


def test_s8_checkpoint_round_trip_verify_prove_and_bundle(store, workspace) -> None:
    """§8: a checkpoint signs the tree; verify, inclusion proofs and an offline bundle all check out."""
    signer = keys.load_signer(store).signer
    ids = fill(store, workspace, signer, big=False)
    size = store.journal_size()
    latest = store.latest_checkpoint()
    cp = open_checkpoint(latest.note, signer.verifier)
    assert cp.tree_size == size == latest.tree_size and cp.origin == signer.name
    assert cp.root_hash == MerkleTree(store.leaf_hashes()).root()
    assert len(service.list_checkpoints(store)) == 5

    # nothing new: the same note comes back and nothing is stored
    note, again = service.checkpoint(store, signer)
    assert note == latest.note and again == cp and len(service.list_checkpoints(store)) == 5

    report = service.verify_store(store, signer.verifier)
    assert report.ok, report.problems
    assert report.records_checked == size and report.executions == len(ids) and report.checkpoint == cp
    assert report.checkpoint_status == "ok" and report.checkpoints_checked == 5
    assert report.results_checked == len(ids)  # every execution here ended with a stored PlanResult
    one = service.verify_store(store, signer.verifier, execution_id=ids[0])
    assert one.ok and one.scope == "execution" and one.records_checked == len(list(store.journal(ids[0])))

    proofs = service.prove(store, ids[3], signer)
    assert proofs["checkpoint"] == cp.to_dict()
    for item, rec in zip(proofs["records"], store.journal(ids[3]), strict=True):
        path = [base64.b64decode(p) for p in item["inclusion_proof"]]
        verify_inclusion(record_leaf_hash(rec.body), rec.leaf_index, cp.tree_size, path, cp.root_hash)

    bundle = json.loads(json.dumps(service.export_bundle(store, ids[1], signer)))
    result = verify_bundle(bundle, signer.verifier.to_key())
    assert result.ok, result.problems
    assert result.records_checked == len(list(store.journal(ids[1])))


def test_s8_prove_signs_a_covering_checkpoint_when_needed(store, workspace) -> None:
    """§8: records newer than the latest checkpoint get a new signed checkpoint that covers them."""
    from ordinance.engine import Engine

    signer = keys.load_signer(store).signer
    eid = Engine(store, workspace=str(workspace)).run(chain_plan(3), environment=ENV).execution_id
    assert store.latest_checkpoint() is None
    proofs = service.prove(store, eid, signer)
    assert proofs["checkpoint"]["tree_size"] == store.journal_size() == store.latest_checkpoint().tree_size
    with pytest.raises(service.UnknownExecutionError):
        service.prove(store, str(uuid.uuid4()), signer)


def test_s8_checkpoint_refuses_to_sign_a_rewritten_log(store, workspace) -> None:
    """§8: a log that no longer extends the last signed checkpoint is never signed again."""
    from ordinance.engine import Engine

    signer = keys.load_signer(store).signer
    engine = Engine(store, workspace=str(workspace))
    engine.run(chain_plan(3), environment=ENV)
    service.checkpoint(store, signer)
    engine.run(chain_plan(3), environment=ENV)
    # a signed checkpoint of the same size but another root: the log forked (or was rewritten and re-signed)
    bogus = Checkpoint(signer.name, store.latest_checkpoint().tree_size, b"\x01" * 32)
    from ordinance.ledger import sign_checkpoint
    from ordinance.store import CheckpointRow

    store.save_checkpoint(CheckpointRow(bogus.tree_size, bogus.root_hash, sign_checkpoint(bogus, signer), 1))
    with pytest.raises(service.LedgerError, match="rewritten"):
        service.checkpoint(store, signer)
    report = service.verify_store(store, signer.verifier)
    assert not report.ok and any("forked" in p.reason for p in report.problems)


def test_s8_stored_result_must_match_the_journal(store, workspace) -> None:
    """§8: the last record holds the PlanResult digest; a changed stored result is reported at that record."""
    from ordinance.engine import Engine

    signer = keys.load_signer(store).signer
    eid = Engine(store, workspace=str(workspace)).run(chain_plan(2), environment=ENV).execution_id
    service.checkpoint(store, signer)
    last = list(store.journal(eid))[-1]
    assert last.kind == RESULT_KIND
    doc = store.get_result(eid)
    doc["duration_ms"] = doc["duration_ms"] + 1
    _sql(store, "UPDATE results SET document = {p} WHERE execution_id = {p}", (json.dumps(doc), eid))
    for report in (service.verify_store(store, signer.verifier),
                   service.verify_store(store, signer.verifier, execution_id=eid)):
        assert not report.ok
        assert (report.first_bad.leaf_index, report.first_bad.execution_id) == (last.leaf_index, eid)
        assert "PlanResult" in report.first_bad.reason


# --------------------------------------------------------------------------------------------------------------
# raw database access for tampering
# --------------------------------------------------------------------------------------------------------------


def _sql(store, statement: str, params: tuple = (), *, many: list[tuple] | None = None) -> None:
    """Run one statement (``{p}`` placeholders) directly against the store's database, committed."""
    from ordinance.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            sql = statement.replace("{p}", "?")
            if many is not None:
                conn.executemany(sql, many)
            else:
                conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=False) as conn:
        sql = statement.replace("{p}", "%s")
        with conn.cursor() as cur:
            if many is not None:
                cur.executemany(sql, many)
            else:
                cur.execute(sql, params)
        conn.commit()


def _raw_rows(store, where: str, params: tuple) -> list[tuple]:
    """Journal rows (all columns, the leaf hash included) matching ``where`` (``{p}`` placeholders)."""
    from ordinance.store.sqlite import SQLiteStore

    sql = f"SELECT leaf_index, execution_id, seq, kind, body, entry_hash, leaf_hash FROM journal WHERE {where} ORDER BY leaf_index"
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            return [tuple(r) for r in conn.execute(sql.replace("{p}", "?"), params)]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(store.url) as conn:
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in conn.execute(sql.replace("{p}", "%s"), params)]


_INSERT = ("INSERT INTO journal (leaf_index, execution_id, seq, kind, body, entry_hash, leaf_hash) "
           "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})")
_FAR = 10_000_000  # leaf indices are moved out of the way through here (the primary key is checked per row)


def _shift(store, start: int, by: int) -> None:
    _sql(store, "UPDATE journal SET leaf_index = leaf_index + {p} WHERE leaf_index >= {p}", (_FAR, start))
    _sql(store, "UPDATE journal SET leaf_index = leaf_index - {p} WHERE leaf_index >= {p}", (_FAR - by, _FAR + start))


# --------------------------------------------------------------------------------------------------------------
# the 1000+ record log, per backend, shared by the tamper tests
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    backend: str
    store: Any
    signer: Any
    key_dir: str
    ids: list[str]
    rows: list[Row]
    ctx: service.VerifyContext


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"ledger-{request.param}")
    key_dir = str(base / "keys")
    if request.param == "sqlite":
        from ordinance.store.sqlite import SQLiteStore

        store = SQLiteStore(str(base / "store" / "ordinance.db"), durability="off")
        cleanup = store.close
    else:
        from support import drop_pg_schema, pg_url_or_reason

        from ordinance.store.postgres import PostgresStore

        url, why = pg_url_or_reason()
        if url is None:
            pytest.skip(why)
        schema = "t_" + uuid.uuid4().hex[:12]
        store = PostgresStore(url, schema=schema, durability="off")

        def cleanup() -> None:
            store.close()
            drop_pg_schema(url, schema)

    (base / "ws").mkdir()
    try:
        signer = keys.load_signer(store, key_dir=key_dir).signer
        ids = fill(store, base / "ws", signer)
        rows = [Row(r.leaf_index, r.execution_id, r.seq, r.kind, r.body, r.entry_hash) for r in store.journal()]
        assert len(rows) >= 1000
        ctx = service.load_context(store, signer.verifier)
        digests = {eid: ctx.result_digest(eid, None) for eid in ids}
        ctx.result_digest = lambda eid, _want: digests.get(eid)
        ctx.committed_leaves = None  # the attacker also fixed the store's leaf-hash index
        yield Ledger(request.param, store, signer, key_dir, ids, rows, ctx)
    finally:
        cleanup()


def _positions(ledger: Ledger, n: int) -> range:
    """Every position on SQLite; on PostgreSQL a dense sample (every 3rd) for deletions, insertions, swaps and
    truncations (every record for byte changes).  The rows are the same bytes on both and the checks the same
    code: the second backend adds the reading of the rows and of its context, not new cases (and keeps the
    suite within its time budget)."""
    return range(n) if ledger.backend == "sqlite" else range(0, n, 3)


def _check(ledger: Ledger, scanned: list) -> Any:
    return service.check_log(lambda: scanned, ledger.ctx)


def _scanned(rows: list[Row]) -> list:
    return [scan_record(r) for r in rows]  # type: ignore[arg-type]


def _with_leaf(s, li: int):
    return s._replace(record=s.record._replace(leaf_index=li))


def _forged(ledger: Ledger, target: Row, li: int) -> Row:
    """A well-formed record competing with ``target``: same execution, seq and link, different data."""
    obj = json.loads(target.body)
    data = dict(obj["data"], forged=True)
    rec = make_record(obj["execution_id"], obj["seq"], obj["kind"], obj["at"], data, obj["prev_entry_hash"],
                      step_id=obj.get("step_id"), attempt=obj.get("attempt"))
    return Row(li, rec.execution_id, rec.seq, rec.kind, rec.body, rec.entry_hash)


def test_s8_tamper_fixture_verifies_clean(ledger: Ledger) -> None:
    """§8: the untouched 1000+ record log verifies, sequentially and with worker processes."""
    assert len({r.execution_id for r in ledger.rows}) == len(ledger.ids)
    kinds = [r.kind for r in ledger.rows]
    assert kinds.count(RESULT_KIND) == len(ledger.ids)
    # the first two executions were written concurrently: their records interleave
    first_two = [r.execution_id for r in ledger.rows[:500] if r.execution_id in ledger.ids[:2]]
    assert sum(1 for a, b in itertools.pairwise(first_two) if a != b) > 20
    report = _check(ledger, _scanned(ledger.rows))
    assert report.ok, report.problems[:3]
    full = service.verify_store(ledger.store, ledger.signer.verifier, workers=1)
    assert full.ok and full.records_checked == len(ledger.rows)
    assert full.checkpoints_checked == 5 and full.results_checked == len(ledger.ids)
    parallel = service.verify_store(ledger.store, ledger.signer.verifier, workers=2)
    assert parallel.ok and parallel.root_hash == full.root_hash and parallel.executions == full.executions


def _comparable(report) -> dict[str, Any]:
    d = report.to_dict()
    del d["elapsed_ms"], d["records_per_second"]
    return d


def test_s8_parallel_verification_agrees_with_sequential(ledger: Ledger, monkeypatch) -> None:
    """§8: worker processes checking leaf ranges reach the sequential verdict (and defer to it on any problem)."""
    monkeypatch.setattr(service, "PARALLEL_CHUNK_MIN", 97)  # many ranges: heads and tails are stitched
    store, verifier = ledger.store, ledger.signer.verifier
    seq = service.verify_store(store, verifier, workers=1)
    par = service.verify_store(store, verifier, workers=2)
    assert seq.ok and _comparable(par) == _comparable(seq)
    i = 500
    body = bytearray(ledger.rows[i].body)
    body[-3] ^= 0x04
    _sql(store, "UPDATE journal SET body = {p} WHERE leaf_index = {p}", (bytes(body), i))
    try:
        seq = service.verify_store(store, verifier, workers=1)
        par = service.verify_store(store, verifier, workers=2)
        assert not par.ok and par.first_bad.leaf_index == i and _comparable(par) == _comparable(seq)
    finally:
        _sql(store, "UPDATE journal SET body = {p} WHERE leaf_index = {p}", (ledger.rows[i].body, i))
    _clean(ledger)


def test_s8_every_single_byte_change_is_named(ledger: Ledger) -> None:
    """§8: changing one byte of any record's body is detected at exactly that record."""
    base = _scanned(ledger.rows)
    for i, row in enumerate(ledger.rows):
        body = bytearray(row.body)
        pos = (i * 7919) % len(body)
        body[pos] ^= 0x01
        mutated = base[:i] + [scan_record(row._replace(body=bytes(body)))] + base[i + 1 :]
        report = _check(ledger, mutated)
        assert not report.ok, i
        assert report.first_bad.leaf_index == i, (i, report.first_bad)


def test_s8_every_deletion_is_named(ledger: Ledger) -> None:
    """§8: deleting any record is detected, naming its leaf index."""
    base = _scanned(ledger.rows)
    for i in _positions(ledger, len(base)):
        report = _check(ledger, base[:i] + base[i + 1 :])
        assert not report.ok, i
        assert report.first_bad.leaf_index == i, (i, report.first_bad)


def test_s8_every_inserted_forged_record_is_named(ledger: Ledger) -> None:
    """§8: a forged, correctly hashed record inserted before any record (the rest renumbered) is named."""
    base = _scanned(ledger.rows)
    shifted = [_with_leaf(s, s.record.leaf_index + 1) for s in base]
    for i in _positions(ledger, len(base)):
        row = ledger.rows[i]
        forged = scan_record(_forged(ledger, row, i))  # type: ignore[arg-type]
        report = _check(ledger, base[:i] + [forged] + shifted[i:])
        assert not report.ok, i
        assert report.first_bad.leaf_index == i, (i, report.first_bad, report.problems[:4])
    # and appended after the last record: a record after its execution's final execution.result
    last = ledger.rows[-1]
    rec = make_record(last.execution_id, last.seq + 1, "step.attempt_started", json.loads(last.body)["at"], {},
                      last.entry_hash, leaf_index=len(base))
    report = _check(ledger, base + [scan_record(rec)])
    assert not report.ok and report.first_bad.leaf_index == len(base)


def test_s8_every_swap_of_neighbours_is_detected_and_named(ledger: Ledger) -> None:
    """§8: swapping any two neighbouring records is detected.

    Within one execution the chain names the first of the two.  Across executions only the tree sees
    it; the report then names the first leaf when the store's checkpoints pin it, else the first
    leaf of the range between the two nearest checkpoints (never past the change).
    """
    base = _scanned(ledger.rows)
    sizes = sorted(a.tree_size for a in ledger.ctx.anchors)
    across = 0
    for i in _positions(ledger, len(base) - 1):
        a, b = base[i], base[i + 1]
        mutated = base[:i] + [_with_leaf(b, i), _with_leaf(a, i + 1)] + base[i + 2 :]
        report = _check(ledger, mutated)
        assert not report.ok, i
        first = report.first_bad.leaf_index
        if a.record.execution_id == b.record.execution_id:
            assert first == i, (i, report.first_bad)
        else:
            across += 1
            good = max([s for s in sizes if s <= i] or [0])
            assert first is not None and good <= first <= i, (i, report.first_bad, sizes)
    assert across > 5  # the concurrent runs interleave
    # with a checkpoint per tree size (e.g. one per write), every swap is named exactly
    ctx = ledger.ctx
    tree = MerkleTree(s.leaf_hash for s in base)
    dense = [Checkpoint(ctx.checkpoint.origin, k, tree.root(k)) for k in range(1, len(base) + 1)]
    saved = ctx.anchors
    try:
        ctx.anchors = dense
        for i in range(len(base) - 1):
            a, b = base[i], base[i + 1]
            if a.record.execution_id != b.record.execution_id:
                report = _check(ledger, base[:i] + [_with_leaf(b, i), _with_leaf(a, i + 1)] + base[i + 2 :])
                assert report.first_bad.leaf_index == i, (i, report.first_bad)
    finally:
        ctx.anchors = saved


def test_s8_every_truncation_is_named(ledger: Ledger) -> None:
    """§8: cutting the log at any record is detected, naming the first missing leaf."""
    base = _scanned(ledger.rows)
    for k in _positions(ledger, len(base)):
        report = _check(ledger, base[:k])
        assert not report.ok, k
        assert report.first_bad.leaf_index == k, (k, report.first_bad)


def test_s8_since_catches_rewrite_and_truncation(ledger: Ledger) -> None:
    """§8: an older checkpoint kept elsewhere catches history rewritten and re-signed, and truncation."""
    store, signer = ledger.store, ledger.signer
    old_note = service.list_checkpoints(store)[1].note
    report = service.verify_store(store, signer.verifier, since_note=old_note)
    assert report.ok and report.since.ok
    ctx = ledger.ctx
    base = _scanned(ledger.rows)
    ctx.since = open_checkpoint(old_note, signer.verifier)
    saved = (ctx.checkpoint, ctx.anchors)
    try:
        # the attacker rewrote leaf 3 and signed everything again with the stolen key
        body = bytearray(ledger.rows[3].body)
        body[10] ^= 1
        forged = base[:3] + [scan_record(ledger.rows[3]._replace(body=bytes(body)))] + base[4:]
        tree = MerkleTree(s.leaf_hash for s in forged)
        ctx.checkpoint = Checkpoint(signer.name, tree.size, tree.root())
        ctx.anchors = [ctx.checkpoint]
        report = _check(ledger, forged)
        assert not report.ok and not report.since.ok and "rewritten" in report.since.reason
        assert report.first_bad.leaf_index == 3
        # truncated below the old checkpoint, checkpoints rewritten to match
        cut = ctx.since.tree_size - 5
        tree = MerkleTree(s.leaf_hash for s in base[:cut])
        ctx.checkpoint = Checkpoint(signer.name, cut, tree.root())
        ctx.anchors = [ctx.checkpoint]
        report = _check(ledger, base[:cut])
        assert not report.ok and report.first_bad.leaf_index == cut
    finally:
        ctx.checkpoint, ctx.anchors = saved
        ctx.since = None


# --------------------------------------------------------------------------------------------------------------
# the same through the database and the real CLI
# --------------------------------------------------------------------------------------------------------------


def _cli_verify(ledger: Ledger, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = cli("journal", "verify", "--json", "--store", ledger.store.url, *extra,
               env={"ORDINANCE_KEY_DIR": ledger.key_dir})
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.returncode, json.loads(proc.stdout)


def _clean(ledger: Ledger) -> None:
    report = service.verify_store(ledger.store, ledger.signer.verifier, workers=1)
    assert report.ok, report.problems[:3]


def test_s8_tampering_the_database_is_caught_by_journal_verify(ledger: Ledger) -> None:
    """§8: raw SQL changes to the journal table are reported by ``ordinance journal verify`` (exit 1)."""
    store, rows = ledger.store, ledger.rows
    n = len(rows)

    # 1. one byte of one body (the leaf-hash index left alone)
    i = n // 3
    body = bytearray(rows[i].body)
    body[len(body) // 2] ^= 0x20
    _sql(store, "UPDATE journal SET body = {p} WHERE leaf_index = {p}", (bytes(body), i))
    rc, rep = _cli_verify(ledger)
    assert rc == 1 and rep["ok"] is False
    assert (rep["first_bad"]["leaf_index"], rep["first_bad"]["execution_id"], rep["first_bad"]["seq"]) == (
        i, rows[i].execution_id, rows[i].seq)
    _sql(store, "UPDATE journal SET body = {p} WHERE leaf_index = {p}", (rows[i].body, i))
    _clean(ledger)

    # 2. deletion of a row
    i = n // 2
    saved = _raw_rows(store, "leaf_index = {p}", (i,))
    _sql(store, "DELETE FROM journal WHERE leaf_index = {p}", (i,))
    rc, rep = _cli_verify(ledger)
    assert rc == 1 and rep["first_bad"]["leaf_index"] == i
    _sql(store, _INSERT, saved[0])
    _clean(ledger)

    # 3. a forged row inserted (everything after it renumbered, its leaf hash set correctly): the unique
    #    (execution_id, seq) index keeps it from competing with a genuine record, so it starts a forged,
    #    self-consistent execution of its own
    i = 2 * n // 3
    rec = make_record(str(uuid.uuid4()), 0, "execution.received", json.loads(rows[i].body)["at"], {"forged": True},
                      ZERO_HASH)
    forged = Row(i, rec.execution_id, rec.seq, rec.kind, rec.body, rec.entry_hash)
    _shift(store, i, 1)
    _sql(store, _INSERT, (*forged, record_leaf_hash(forged.body)))
    rc, rep = _cli_verify(ledger)
    assert rc == 1 and rep["first_bad"]["leaf_index"] == i, rep["problems"][:4]
    _sql(store, "DELETE FROM journal WHERE leaf_index = {p}", (i,))
    _shift(store, i + 1, -1)
    _clean(ledger)

    # 4. two neighbours of one execution swapped (whole rows, leaf hashes included)
    i = next(k for k in range(n // 4, n) if rows[k].execution_id == rows[k + 1].execution_id)
    _sql(store, "UPDATE journal SET leaf_index = {p} WHERE leaf_index = {p}", (_FAR, i))
    _sql(store, "UPDATE journal SET leaf_index = {p} WHERE leaf_index = {p}", (i, i + 1))
    _sql(store, "UPDATE journal SET leaf_index = {p} WHERE leaf_index = {p}", (i + 1, _FAR))
    rc, rep = _cli_verify(ledger)
    assert rc == 1 and rep["first_bad"]["leaf_index"] == i
    _sql(store, "UPDATE journal SET leaf_index = {p} WHERE leaf_index = {p}", (_FAR, i))
    _sql(store, "UPDATE journal SET leaf_index = {p} WHERE leaf_index = {p}", (i, i + 1))
    _sql(store, "UPDATE journal SET leaf_index = {p} WHERE leaf_index = {p}", (i + 1, _FAR))
    _clean(ledger)

    # 5. truncation of the last records
    k = n - 40
    saved = _raw_rows(store, "leaf_index >= {p}", (k,))
    _sql(store, "DELETE FROM journal WHERE leaf_index >= {p}", (k,))
    rc, rep = _cli_verify(ledger)
    assert rc == 1 and rep["first_bad"]["leaf_index"] == k
    assert rep["checkpoint_status"] == "failed"
    _sql(store, _INSERT, many=saved)
    _clean(ledger)
    assert _cli_verify(ledger)[0] == 0


def test_s8_forged_checkpoint_rows_are_reported(ledger: Ledger) -> None:
    """§8: a checkpoint row whose note does not verify (forged, or signed by another key) is reported."""
    from ordinance.ledger import Signer, sign_checkpoint
    from ordinance.store import CheckpointRow

    store = ledger.store
    other = Signer.generate(ledger.signer.name)  # same origin, another key
    cp = Checkpoint(other.name, len(ledger.rows) + 5, b"\x02" * 32)
    store.save_checkpoint(CheckpointRow(cp.tree_size, cp.root_hash, sign_checkpoint(cp, other), 1))
    try:
        report = service.verify_store(store, ledger.signer.verifier)
        assert not report.ok
        assert any("not valid" in p.reason and "known key" in p.reason for p in report.problems)
        assert report.checkpoint.tree_size == len(ledger.rows)  # the forged one is not trusted
    finally:
        _sql(store, "DELETE FROM checkpoints WHERE tree_size = {p}", (cp.tree_size,))
    _clean(ledger)
