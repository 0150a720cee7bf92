"""Canonical JSON and digests (CONTRACT §0.1–§0.4).

Everything that is hashed in Ordinance goes through :func:`canonical_bytes`, so two
equal JSON values always produce the same bytes and the same digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_bytes", "canonical_json", "digest", "digest_bytes", "plan_digest", "run_id", "ZERO_DIGEST"]

ZERO_DIGEST = "sha256:" + "0" * 64

_encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)


def canonical_json(obj: Any) -> str:
    """§0.1: ``json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)``."""
    return _encoder.encode(obj)


def canonical_bytes(obj: Any) -> bytes:
    """§0.1 canonical JSON, encoded UTF-8."""
    return _encoder.encode(obj).encode("utf-8")


def digest_bytes(data: bytes) -> str:
    """``"sha256:" + lowercase hex`` of raw bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest(obj: Any) -> str:
    """§0.2: ``"sha256:" + hexdigest(sha256(canonical_bytes(obj)))``."""
    return digest_bytes(canonical_bytes(obj))


def plan_digest(plan: Any) -> str:
    """§0.3: the digest of the canonical v1 plan document.

    Accepts a plan model (anything with ``to_document()``) or a plain mapping.
    """
    doc = plan.to_document() if hasattr(plan, "to_document") else plan
    return digest(doc)


def run_id(plan_digest_value: str, execution_id: str) -> str:
    """§0.4: ``digest({"plan": plan_digest, "execution_id": execution_id})``."""
    return digest({"plan": plan_digest_value, "execution_id": execution_id})
