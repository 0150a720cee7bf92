"""§8: export bundles verify offline with only the public key, and reject every tampering."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from ordinance.ledger import (
    BUNDLE_FORMAT,
    Checkpoint,
    MerkleTree,
    Signer,
    build_bundle,
    make_record,
    sign_checkpoint,
    verify_bundle,
)
from ordinance.ledger.synthetic import SyntheticLog

ORIGIN = "ordinance.test/journal"


@pytest.fixture(scope="module")
def setup(journal: SyntheticLog, journal_tree: MerkleTree, journal_checkpoint: Checkpoint, signer: Signer):
    note = sign_checkpoint(journal_checkpoint, signer)
    sizes = {e: sum(r.execution_id == e for r in journal.records) for e in journal.executions}
    eids = sorted(journal.executions, key=sizes.__getitem__)[:3]  # ~100 records; the loops below are O(n²)
    records = [r for r in journal.records if r.execution_id in eids]
    bundle = build_bundle(records, journal_tree, note)
    return bundle, signer.verifier.to_key(), records, journal_tree, note


def test_s8_bundle_round_trip(setup) -> None:
    """§8: a bundle survives JSON and verifies offline with only the verifier key."""
    bundle, vkey, records, tree, note = setup
    assert bundle["format"] == BUNDLE_FORMAT and bundle["checkpoint"] == note
    assert [r["leaf_index"] for r in bundle["records"]] == [r.leaf_index for r in records]
    report = verify_bundle(json.loads(json.dumps(bundle)), vkey)
    assert report.ok, report.summary()
    assert report.records_checked == len(records) and report.executions == 3
    assert report.checkpoint.tree_size == tree.size
    assert report.summary().startswith("OK:")
    assert verify_bundle(bundle, vkey, origin=ORIGIN).ok
    json.dumps(report.to_dict())


def test_s8_bundle_builders_agree(setup) -> None:
    """§8: leaf hashes, a tree or a proof function give the same bundle; meta rides along."""
    bundle, _vkey, records, tree, note = setup
    leaves = [tree.leaf_hash(i) for i in range(tree.size)]
    assert build_bundle(records, leaves, note) == bundle
    assert build_bundle(records, tree.inclusion_proof, note) == bundle
    with_meta = build_bundle(records[:5], tree, note, meta={"exported_by": "test"})
    assert with_meta["meta"] == {"exported_by": "test"}


def test_s8_bundle_build_refuses_inconsistent_input(setup, journal: SyntheticLog) -> None:
    """§8: a builder never writes a bundle that would not verify."""
    _bundle, _vkey, records, tree, note = setup
    with pytest.raises(ValueError):
        build_bundle(records, MerkleTree([tree.leaf_hash(i) for i in range(10)]), note)
    with pytest.raises(ValueError):
        build_bundle([records[0].with_leaf_index(5000)], tree, note)
    with pytest.raises(ValueError):
        build_bundle([records[0].with_leaf_index(records[0].leaf_index + 1)], tree, note)


def test_s8_bundle_wrong_public_key(setup) -> None:
    """§8: a different key (even with the same name) rejects the bundle."""
    bundle, *_ = setup
    other = Signer.generate(ORIGIN).verifier.to_key()
    report = verify_bundle(bundle, other)
    assert not report.ok and "not signed by a known key" in report.first_bad.reason
    assert not verify_bundle(bundle, setup[1], origin="someone.else/log").ok


def test_s8_bundle_altered_checkpoint(setup, signer: Signer, journal_tree: MerkleTree) -> None:
    """§8: any change to the signed checkpoint, or a checkpoint re-signed by another key, is rejected."""
    bundle, vkey, *_ = setup
    note = bundle["checkpoint"]
    lines = note.split("\n")
    variants = [
        note.replace(f"\n{journal_tree.size}\n", f"\n{journal_tree.size + 1}\n"),
        "\n".join([lines[0] + "x", *lines[1:]]),
        "\n".join([lines[0], lines[1], base64.b64encode(b"\x00" * 32).decode(), *lines[3:]]),
        sign_checkpoint(Checkpoint(ORIGIN, journal_tree.size, b"\x00" * 32), Signer.generate(ORIGIN)),
        note.replace("\n\n", "\n"),
        "",
    ]
    for bad in variants:
        b = dict(bundle, checkpoint=bad)
        report = verify_bundle(b, vkey)
        assert not report.ok and report.first_bad.reason.startswith("checkpoint rejected"), report.first_bad
    # a genuinely signed checkpoint over a different tree fails the inclusion proofs instead
    wrong_tree = sign_checkpoint(Checkpoint(ORIGIN, journal_tree.size, b"\x00" * 32), signer)
    report = verify_bundle(dict(bundle, checkpoint=wrong_tree), vkey)
    assert not report.ok and "inclusion proof fails" in report.first_bad.reason


def test_s8_bundle_changed_record_every_record(setup) -> None:
    """§8 change: a changed byte in any record's body is rejected, naming that record."""
    bundle, vkey, *_ = setup
    for i, item in enumerate(bundle["records"]):
        body = item["body"]
        pos = (i * 13) % len(body)
        b = dict(bundle, records=list(bundle["records"]))
        b["records"][i] = dict(item, body=body[:pos] + ("x" if body[pos] != "x" else "y") + body[pos + 1 :])
        report = verify_bundle(b, vkey)
        assert not report.ok and report.first_bad.leaf_index == item["leaf_index"], (i, report.first_bad)
        assert "inclusion proof fails" in report.first_bad.reason


def test_s8_bundle_changed_entry_hash(setup) -> None:
    """§8 change: an edited entry_hash is rejected on its record."""
    bundle, vkey, *_ = setup
    b = copy.deepcopy(bundle)
    b["records"][7]["entry_hash"] = "sha256:" + "1" * 64
    report = verify_bundle(b, vkey)
    assert report.first_bad.leaf_index == bundle["records"][7]["leaf_index"]
    assert report.first_bad.reason == "entry_hash does not match body"


def test_s8_bundle_removed_record_every_record(setup) -> None:
    """§8 deletion: removing any record breaks its execution's chain or completeness."""
    bundle, vkey, records, *_ = setup
    for i in range(len(records)):
        b = dict(bundle, records=bundle["records"][:i] + bundle["records"][i + 1 :])
        report = verify_bundle(b, vkey)
        assert not report.ok, i
        rec = records[i]
        later = [r for r in records[i + 1 :] if r.execution_id == rec.execution_id]
        if later:  # the next record of the execution is where the chain breaks
            assert report.first_bad.leaf_index == later[0].leaf_index, (i, report.first_bad)
            assert report.first_bad.reason.startswith("seq gap"), report.first_bad
        else:  # its final record: the execution is incomplete
            assert any(p.execution_id == rec.execution_id and "tail is missing" in p.reason for p in report.problems)
    partial = dict(bundle, records=bundle["records"][:-1])
    assert verify_bundle(partial, vkey, require_complete=False).ok


def test_s8_bundle_altered_proof(setup) -> None:
    """§8: a flipped bit, a dropped or an extra proof element, or garbage, is rejected on its record."""
    bundle, vkey, *_ = setup
    for i in range(0, len(bundle["records"]), 11):
        li = bundle["records"][i]["leaf_index"]
        proof = bundle["records"][i]["inclusion_proof"]
        flipped = bytearray(base64.b64decode(proof[i % len(proof)]))
        flipped[5] ^= 0x10
        variants = [
            [*proof[: i % len(proof)], base64.b64encode(flipped).decode(), *proof[i % len(proof) + 1 :]],
            proof[:-1],
            [*proof, proof[0]],
            [*proof[:-1], "not base64!"],
            [*proof[:-1], base64.b64encode(b"short").decode()],
        ]
        for bad in variants:
            b = dict(bundle, records=list(bundle["records"]))
            b["records"][i] = dict(bundle["records"][i], inclusion_proof=bad)
            report = verify_bundle(b, vkey)
            assert not report.ok and report.first_bad.leaf_index == li, report.first_bad


def test_s8_bundle_forged_and_reordered_records(setup) -> None:
    """§8 insertion/reordering: a forged record or an out-of-order record is rejected."""
    bundle, vkey, records, *_ = setup
    first = bundle["records"][0]
    forged = make_record(records[0].execution_id, 99, "step.finished", 1, {}, records[0].entry_hash)
    b = copy.deepcopy(bundle)
    b["records"].insert(
        1,
        {
            "leaf_index": first["leaf_index"] + 1,
            "body": forged.body.decode(),
            "entry_hash": forged.entry_hash,
            "inclusion_proof": first["inclusion_proof"],
        },
    )
    report = verify_bundle(b, vkey)
    assert not report.ok and report.first_bad.leaf_index == first["leaf_index"] + 1

    b = copy.deepcopy(bundle)
    b["records"][3], b["records"][4] = b["records"][4], b["records"][3]
    report = verify_bundle(b, vkey)
    assert not report.ok and "out of leaf order" in report.first_bad.reason

    b = copy.deepcopy(bundle)  # swap bodies but keep the leaf indices and proofs
    b["records"][3]["body"], b["records"][4]["body"] = b["records"][4]["body"], b["records"][3]["body"]
    report = verify_bundle(b, vkey)
    assert not report.ok and report.first_bad.leaf_index == bundle["records"][3]["leaf_index"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: [],
        lambda b: {**b, "format": "ordinance.journal-bundle/v0"},
        lambda b: {k: v for k, v in b.items() if k != "records"},
        lambda b: {**b, "records": {}},
        lambda b: {**b, "extra": 1},
        lambda b: {**b, "records": []},
        lambda b: {**b, "records": [{"leaf_index": 0}]},
        lambda b: {**b, "records": [{**b["records"][0], "leaf_index": "0"}]},
        lambda b: {**b, "records": [{**b["records"][0], "leaf_index": 10**6}]},
        lambda b: {**b, "records": [{**b["records"][0], "body": "\ud800"}]},
    ],
)
def test_s8_bundle_malformed(setup, mutate) -> None:
    """§8: a structurally broken bundle is rejected, never crashes."""
    bundle, vkey, *_ = setup
    assert not verify_bundle(mutate(copy.deepcopy(bundle)), vkey).ok
