"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification (§8).

Hashing (RFC 6962 §2.1): a leaf hash is ``sha256(0x00 || data)``, an interior node is
``sha256(0x01 || left || right)`` and the empty tree's root is ``sha256(b"")``.  A tree of
``n > 1`` leaves splits at ``k``, the largest power of two below ``n``.

Three tools cover the store's needs:

* :func:`root_from_leaf_hashes` - one fast, iterative pass over a list of leaf hashes;
* :class:`MerkleTree` - keeps every complete ("perfect") subtree of a list of leaf hashes, so the
  root at *any* earlier size, inclusion proofs and consistency proofs cost O(log² n) each;
* :class:`CompactRange` - the right frontier of a growing log (O(log n) hashes): appending a leaf
  and reading the new root cost O(log n), and it round-trips through JSON for storage in a row.

The verifiers (:func:`verify_inclusion`, :func:`verify_consistency`) follow RFC 9162 §2.1.3.2 and
§2.1.4.2 and raise :class:`ProofError` with a message that says what failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from hashlib import sha256

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "ProofError",
    "TreeState",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = sha256(b"").digest()
"""Root hash of the empty tree: ``sha256(b"")``."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A Merkle proof did not verify, or its inputs were out of range."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf's data: ``sha256(0x00 || data)``."""
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node: ``sha256(0x01 || left || right)``."""
    return sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Hash adjacent pairs of ``level``; an odd last node is dropped (the caller keeps it)."""
    p = _NODE_PREFIX
    return [sha256(p + a + b).digest() for a, b in zip(level[0::2], level[1::2])]


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Root hash of the tree whose leaves have the given hashes.

    Works level by level; promoting an unpaired last node unchanged to the next level gives
    exactly the RFC 6962 left-balanced tree.  About 1.5 M leaves per second in CPython.
    """
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        level = _next_level(level)
        if odd is not None:
            level.append(odd)
    return level[0]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte hash, got {size}")


class MerkleTree:
    """All perfect subtrees of a list of leaf hashes, for roots and proofs at any size.

    ``levels[h][i]`` is the hash of leaves ``[i * 2**h, (i + 1) * 2**h)``.  Building costs one hash
    per leaf (like computing the root once); afterwards :meth:`root`, :meth:`inclusion_proof` and
    :meth:`consistency_proof` cost O(log² n) hashes for any size up to :attr:`size`.
    """

    __slots__ = ("levels",)

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = list(leaf_hashes)
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = _next_level(level)
            self.levels.append(level)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        return self.levels[0][index]

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def subtree_hash(self, lo: int, hi: int) -> bytes:
        """Hash of the RFC 6962 subtree over leaves ``[lo, hi)`` (``lo < hi``, ``lo`` aligned as in the tree)."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:  # a perfect, aligned subtree: stored
            return self.levels[n.bit_length() - 1][lo // n]
        k = _split(n)
        return node_hash(self.subtree_hash(lo, lo + k), self.subtree_hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (default: all)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path (RFC 9162 §2.1.3.1) for leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside a tree of size {size}")
        proof: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self.subtree_hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self.subtree_hash(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof (RFC 9162 §2.1.4.1) from size ``size1`` to ``size2`` (default: all).

        ``size1 == size2`` gives an empty proof.  ``size1`` must be at least 1: every tree is an
        extension of the empty tree, and the RFC defines no proof for it.
        """
        size2 = self._check_size(size2)
        if not 1 <= size1 <= size2:
            raise ValueError(f"consistency proof needs 1 <= size1 <= size2, got {size1} and {size2}")
        proof: list[bytes] = []
        lo, hi, m, complete = 0, size2, size1, True
        while m != hi - lo:  # SUBPROOF(m, D[lo:hi], complete)
            k = _split(hi - lo)
            if m <= k:
                proof.append(self.subtree_hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self.subtree_hash(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self.subtree_hash(lo, hi))
        proof.reverse()
        return proof


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int | None = None) -> list[bytes]:
    """Inclusion proof for leaf ``index`` in the tree of the first ``tree_size`` leaf hashes.

    Builds a :class:`MerkleTree` (O(n)); for many proofs over one log build the tree once.
    """
    size = len(leaf_hashes) if tree_size is None else tree_size
    return MerkleTree(leaf_hashes[:size]).inclusion_proof(index, size)


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int, size2: int | None = None) -> list[bytes]:
    """Consistency proof between the trees of the first ``size1`` and ``size2`` leaf hashes."""
    size = len(leaf_hashes) if size2 is None else size2
    return MerkleTree(leaf_hashes[:size]).consistency_proof(size1, size)


def root_from_inclusion_proof(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2); raises :class:`ProofError` if malformed."""
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    _check_hash(leaf, "leaf hash")
    fn, sn = index, tree_size - 1
    r = bytes(leaf)
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
        if sn == 0:
            raise ProofError(f"inclusion proof too long: {len(proof)} elements, tree of size {tree_size} needs {i}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof too short: {len(proof)} elements for leaf {index} of a tree of size {tree_size}"
        )
    return r


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` (a leaf *hash*) is leaf ``index`` of the tree of size ``tree_size`` with root ``root``.

    Raises :class:`ProofError` on any failure.
    """
    calculated = root_from_inclusion_proof(leaf, index, tree_size, proof)
    if calculated != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of tree size {tree_size} gives root {calculated.hex()}, "
            f"expected {bytes(root).hex()}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of size ``size2`` / root ``root2`` extends the one of size ``size1`` / ``root1``.

    RFC 9162 §2.1.4.2.  ``size1`` must be at least 1 (a proof from the empty tree proves nothing);
    equal sizes need an empty proof and equal roots.  Raises :class:`ProofError` on any failure.
    """
    if size1 < 1:
        raise ProofError(f"consistency from a tree of size {size1} is meaningless: size1 must be at least 1")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) is smaller than size1 ({size1}): the newer tree is shorter")
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal ({size1}) but the proof is not empty ({len(proof)} elements)")
        if root1 != root2:
            raise ProofError(f"sizes are equal ({size1}) but the roots differ")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from size {size1} to {size2}")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof too long ({len(proof)} elements) from size {size1} to {size2}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof too short ({len(proof)} elements) from size {size1} to {size2}")
    if fr != root1:
        raise ProofError(f"consistency proof does not reproduce the old root at size {size1}: history was rewritten")
    if sr != root2:
        raise ProofError(f"consistency proof does not reproduce the new root at size {size2}")


class CompactRange:
    """The right frontier of an append-only log: one perfect-subtree hash per set bit of :attr:`size`.

    Appending a leaf merges at most log₂ n hashes; :meth:`root` folds the frontier (O(log n)).  The
    state serialises to JSON (``{"size": n, "frontier": [hex, ...]}``) so a store can keep it in one
    row and carry on appending after a restart.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        nodes = [bytes(h) for h in frontier]
        if len(nodes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} frontier hashes, got {len(nodes)}")
        for i, h in enumerate(nodes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hash {i} must be {HASH_SIZE} bytes, got {len(h)}")
        self._size = size
        self._nodes = nodes

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> CompactRange:
        """A compact range over the given leaf hashes."""
        cr = cls()
        cr.extend(hashes)
        return cr

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """Hashes of the perfect subtrees covering the log, largest (leftmost) first."""
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> bytes:
        """Append one leaf *hash*; returns the new root."""
        self._push(leaf)
        return self.root()

    def _push(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        h = bytes(leaf)
        n = self._size
        nodes = self._nodes
        while n & 1:
            h = node_hash(nodes.pop(), h)
            n >>= 1
        nodes.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes (call :meth:`root` once afterwards)."""
        for leaf in leaves:
            self._push(leaf)

    def root(self) -> bytes:
        """Root hash of the log so far."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        r = nodes[-1]
        for h in reversed(nodes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._nodes)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: ``{"size": n, "frontier": [lowercase hex, ...]}``."""
        return {"size": self._size, "frontier": [h.hex() for h in self._nodes]}

    def to_json(self) -> str:
        """Compact JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: object) -> CompactRange:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything malformed."""
        if not isinstance(data, dict) or set(data) != {"size", "frontier"}:
            raise ValueError("compact range must be an object with exactly 'size' and 'frontier'")
        size, frontier = data["size"], data["frontier"]
        if not isinstance(frontier, list) or not all(isinstance(h, str) for h in frontier):
            raise ValueError("compact range 'frontier' must be a list of hex strings")
        try:
            nodes = [bytes.fromhex(h) for h in frontier]
        except ValueError as exc:
            raise ValueError(f"compact range 'frontier' holds invalid hex: {exc}") from None
        if any(h != n.hex() for h, n in zip(frontier, nodes)):
            raise ValueError("compact range 'frontier' must be lowercase hex without separators")
        return cls(size, nodes)

    @classmethod
    def from_json(cls, text: str | bytes) -> CompactRange:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"compact range is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


TreeState = CompactRange
"""Alias: the persisted incremental state of the store's tree."""
