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

try:  # orjson is byte-identical to the definition for documents without floats (verified by tests)
    import orjson as _orjson

    _ORJSON_OPTS = _orjson.OPT_SORT_KEYS
    # Large documents: anything orjson would render differently from the definition (subclasses, datetimes,
    # dataclasses) is refused by orjson itself; UUIDs, enums and tuples are caught by the round-trip comparison.
    _ORJSON_STRICT = (_orjson.OPT_SORT_KEYS | _orjson.OPT_PASSTHROUGH_SUBCLASS | _orjson.OPT_PASSTHROUGH_DATETIME
                      | _orjson.OPT_PASSTHROUGH_DATACLASS)
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None


#: Past this many containers (objects and arrays) a document is not walked in Python: it takes the C round trip
#: of :func:`_large_fast_path` instead, which costs less than the walk for large documents.
_FAST_PATH_CONTAINERS = 100

_SCALARS = frozenset((str, bool, type(None)))
_INT_MIN, _INT_MAX = -(2**63), 2**63


def _float_free(obj: Any, budget: int = _FAST_PATH_CONTAINERS) -> bool | None:
    """True if ``obj`` holds only str-keyed dicts, lists/tuples, str, int (in 64 bits), bool and None; False if not;
    None if it has more than ``budget`` containers (not walked to the end)."""
    t = type(obj)
    if t in _SCALARS:
        return True
    if t is int:
        return _INT_MIN <= obj < _INT_MAX
    stack = [obj]
    pop, push, scalars = stack.pop, stack.append, _SCALARS
    while stack:
        o = pop()
        t = type(o)
        budget -= 1
        if budget < 0:
            return None
        if t is dict:
            for k in o:
                if type(k) is not str:
                    return False
            values: Any = o.values()
        elif t is list or t is tuple:
            values = o
        else:
            return False
        for v in values:
            tv = type(v)
            if tv in scalars:
                continue
            if tv is int:
                if _INT_MIN <= v < _INT_MAX:
                    continue
                return False
            push(v)
    return True


class _FloatSeen(Exception):
    pass


def _no_float(_text: str) -> Any:
    raise _FloatSeen


def _large_fast_path(obj: Any) -> bytes | None:
    """orjson's bytes for a large document if they are the definition's, else None.

    Walking a large document in Python to prove it float-free costs more than encoding it, so the check runs in C:
    orjson encodes (refusing subclasses, datetimes and dataclasses), the standard library's C scanner reads the
    bytes back and stops at the first float token (whose notation would differ), and the decoded value must equal
    the input (which rules out anything orjson rendered as something else: UUIDs, enums, tuples, NaN as null).
    """
    try:
        out = _orjson.dumps(obj, option=_ORJSON_STRICT)
        back = json.loads(out, parse_float=_no_float)
    except (TypeError, ValueError, RecursionError, _FloatSeen):
        return None
    return out if back == obj else None


def canonical_json(obj: Any) -> str:
    """§0.1: ``json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)``."""
    return _encoder.encode(obj)


def canonical_bytes(obj: Any) -> bytes:
    """§0.1 canonical JSON, encoded UTF-8.

    Documents without floats take orjson (about ten times faster; the same bytes for such documents, where
    floats would differ in notation): small ones after a walk that proves it, large ones after the round trip of
    :func:`_large_fast_path`. Everything else takes the standard library, which is the definition.
    """
    if _orjson is not None:
        free = _float_free(obj)
        if free:
            try:
                return _orjson.dumps(obj, option=_ORJSON_OPTS)
            except TypeError:  # e.g. a lone surrogate: let the definition raise its own error
                pass
        elif free is None:  # too large to walk, not known to hold a float
            out = _large_fast_path(obj)
            if out is not None:
                return out
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
