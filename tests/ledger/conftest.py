"""Shared fixtures for the ledger tests (§8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordinance.ledger import Checkpoint, MerkleTree, Signer
from ordinance.ledger.synthetic import SyntheticLog, synthetic_log

# /work/main/tests/ledger/conftest.py -> parents[2] is the repo root; shared/ is its sibling.
TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"
ORIGIN = "ordinance.test/journal"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared test-vector directory."""
    return TESTDATA


@pytest.fixture(scope="session")
def signer() -> Signer:
    """An Ed25519 note signer named like the log's origin."""
    return Signer.generate(ORIGIN)


@pytest.fixture(scope="session")
def journal() -> SyntheticLog:
    """A valid 1000-record log over 7 interleaved executions."""
    return synthetic_log(1000, executions=7, seed=6962)


@pytest.fixture(scope="session")
def journal_tree(journal: SyntheticLog) -> MerkleTree:
    return MerkleTree(r.leaf_hash for r in journal.records)


@pytest.fixture(scope="session")
def journal_checkpoint(journal_tree: MerkleTree) -> Checkpoint:
    return Checkpoint(ORIGIN, journal_tree.size, journal_tree.root())
