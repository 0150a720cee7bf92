"""§8: the Merkle verifier against the shared RFC 6962 / RFC 9162 test vectors.

Every happy-path vector must verify; every vector with ``wantErr: true`` must be rejected.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ordinance.ledger.merkle import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "rfc6962"
INCLUSION = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTORS / "consistency").rglob("*.json"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(VECTORS)) for p in paths]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def test_vectors_present() -> None:
    """§8: the vector corpus is found next to the repo (guards against silently running nothing)."""
    assert len(INCLUSION) > 50 and len(CONSISTENCY) > 50


@pytest.mark.parametrize("path", INCLUSION, ids=_ids(INCLUSION))
def test_s8_inclusion_vector(path: Path) -> None:
    """§8 RFC 6962 inclusion proof vector: verifies iff ``wantErr`` is false."""
    v = json.loads(path.read_text())
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], [_b64(p) for p in v["proof"] or []], _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_ids(CONSISTENCY))
def test_s8_consistency_vector(path: Path) -> None:
    """§8 RFC 6962 consistency proof vector: verifies iff ``wantErr`` is false."""
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], [_b64(p) for p in v["proof"] or []], _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
