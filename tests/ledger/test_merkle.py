"""§8: RFC 6962 hashing, proof generation and the incremental compact range."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinance.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "rfc6962"

# The leaves behind the shared vectors (the classic certificate-transparency test tree).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

hashes = st.binary(min_size=32, max_size=32)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_s8_hashing_domain_separation() -> None:
    """§8: leaf = sha256(0x00‖data), node = sha256(0x01‖l‖r), empty root = sha256("")."""
    import hashlib

    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MerkleTree([]).root() == EMPTY_ROOT and CompactRange().root() == EMPTY_ROOT


def test_s8_known_roots_of_the_ct_test_tree() -> None:
    """§8: roots of every prefix of the RFC 6962 reference tree, by all three constructions."""
    hs = [leaf_hash(d) for d in CT_LEAVES]
    tree = MerkleTree(hs)
    cr = CompactRange()
    for size, want in CT_ROOTS.items():
        assert root_from_leaf_hashes(hs[:size]).hex() == want
        assert tree.root(size).hex() == want
        assert cr.append(hs[size - 1]).hex() == want


def test_s8_generated_proofs_equal_the_vector_proofs() -> None:
    """§8: the proof generator reproduces the happy-path proofs of the shared vectors."""
    hs = [leaf_hash(d) for d in CT_LEAVES]
    tree = MerkleTree(hs)
    checked = 0
    for path in sorted(VECTORS.rglob("happy-path.json")):
        v = json.loads(path.read_text())
        proof = [base64.b64decode(p) for p in v["proof"] or []]
        if "leafIdx" in v:
            assert tree.inclusion_proof(v["leafIdx"], v["treeSize"]) == proof, path
        elif v["size1"] != v["size2"]:
            assert tree.consistency_proof(v["size1"], v["size2"]) == proof, path
        checked += 1
    assert checked >= 8


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_s8_inclusion_proofs_verify(n: int, data: st.DataObject) -> None:
    """§8 property: every generated inclusion proof verifies, and a wrong index or leaf does not."""
    hs = _leaves(n)
    tree = MerkleTree(hs)
    size = data.draw(st.integers(min_value=1, max_value=n), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    root = tree.root(size)
    proof = tree.inclusion_proof(index, size)
    verify_inclusion(hs[index], index, size, proof, root)
    assert proof == inclusion_proof(hs, index, size)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"other"), index, size, proof, root)
    if size > 1:
        with pytest.raises(ProofError):
            verify_inclusion(hs[index], (index + 1) % size, size, proof, root)
    if proof:
        bad = list(proof)
        k = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
        bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
        with pytest.raises(ProofError):
            verify_inclusion(hs[index], index, size, bad, root)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_s8_consistency_proofs_verify(n: int, data: st.DataObject) -> None:
    """§8 property: every generated consistency proof verifies; a rewritten old tree does not."""
    hs = _leaves(n)
    tree = MerkleTree(hs)
    size2 = data.draw(st.integers(min_value=1, max_value=n), label="size2")
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    proof = tree.consistency_proof(size1, size2)
    verify_consistency(size1, size2, proof, tree.root(size1), tree.root(size2))
    assert proof == consistency_proof(hs, size1, size2)
    if size1 < size2:
        rewritten = list(hs[:size1])
        j = data.draw(st.integers(min_value=0, max_value=size1 - 1), label="rewritten leaf")
        rewritten[j] = leaf_hash(b"rewritten")
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root_from_leaf_hashes(rewritten), tree.root(size2))
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof[:-1], tree.root(size1), tree.root(size2))


@settings(max_examples=40, deadline=None)
@given(st.lists(hashes, max_size=200))
def test_s8_compact_range_matches_full_recomputation(leaves: list[bytes]) -> None:
    """§8 property: the compact range's root after every append equals the full recomputation."""
    cr = CompactRange()
    tree = MerkleTree(leaves)
    for i, h in enumerate(leaves, 1):
        assert cr.append(h) == tree.root(i)
        assert len(cr.frontier) == i.bit_count()
    assert cr.size == len(leaves)
    assert cr.root() == root_from_leaf_hashes(leaves)
    again = CompactRange.from_json(cr.to_json())
    assert again == cr and again.root() == cr.root()


def test_s8_compact_range_resumes_after_json_round_trip() -> None:
    """§8: a store can persist the frontier, reload it and keep appending."""
    hs = _leaves(1000)
    cr = CompactRange.from_leaf_hashes(hs[:617])
    saved = cr.to_json()
    assert json.loads(saved)["size"] == 617
    resumed = CompactRange.from_json(saved)
    resumed.extend(hs[617:])
    assert resumed.root() == root_from_leaf_hashes(hs)
    copy = resumed.copy()
    copy.append(hs[0])
    assert copy.size == 1001 and resumed.size == 1000


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "not json",
        '{"size": 3, "frontier": ["' + "00" * 32 + '"]}',  # 3 leaves need 2 frontier hashes
        '{"size": -1, "frontier": []}',
        '{"size": true, "frontier": []}',
        '{"size": 1, "frontier": ["' + "AB" * 32 + '"]}',  # upper-case hex
        '{"size": 1, "frontier": ["abcd"]}',
        '{"size": 1, "frontier": ["zz"]}',
        '{"size": 0, "frontier": [], "extra": 1}',
    ],
)
def test_s8_compact_range_rejects_malformed_state(text: str) -> None:
    """§8: a corrupted persisted tree state is refused, never silently used."""
    with pytest.raises(ValueError):
        CompactRange.from_json(text)


def test_s8_proof_generation_rejects_out_of_range() -> None:
    """§8: proofs are only generated for leaves and sizes inside the tree."""
    tree = MerkleTree(_leaves(5))
    for bad in [lambda: tree.inclusion_proof(5), lambda: tree.inclusion_proof(0, 6), lambda: tree.root(6)]:
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError):
        tree.consistency_proof(0, 5)
    with pytest.raises(ValueError):
        tree.consistency_proof(4, 3)
    assert tree.consistency_proof(5, 5) == []


def test_s8_verifier_rejects_wrong_sizes_and_lengths() -> None:
    """§8: malformed proof inputs raise ProofError with a useful message."""
    hs = _leaves(6)
    tree = MerkleTree(hs)
    proof = tree.inclusion_proof(2)
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(hs[2], 6, 6, proof, tree.root())
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(hs[2][:31], 2, 6, proof, tree.root())
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(hs[2], 2, 6, proof[:-1], tree.root())
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(hs[2], 2, 6, [*proof, hs[0]], tree.root())
    with pytest.raises(ProofError, match="smaller"):
        verify_consistency(4, 3, [], tree.root(4), tree.root(3))


def test_s8_root_speed() -> None:
    """§8: the iterative root is fast (well above 300k leaves/s even on a loaded CI box)."""
    import time

    hs = [os.urandom(32) for _ in range(1 << 17)]
    start = time.perf_counter()
    root_from_leaf_hashes(hs)
    elapsed = time.perf_counter() - start
    assert len(hs) / elapsed > 300_000, f"{len(hs) / elapsed:,.0f} leaves/s"
