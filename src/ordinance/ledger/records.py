"""The journal record format (§0, §8).

A record is the JSON object::

    {"seq": int, "execution_id": str, "kind": str, "at": int, "data": {...},
     "prev_entry_hash": str, "step_id"?: str, "attempt"?: int}

``seq`` counts from 0 within one execution.  The record's *body* is its canonical JSON (§0.1) and
``entry_hash`` is the digest of the body (§0.2).  The first record of an execution links to
:data:`ZERO_HASH`; every later one to the ``entry_hash`` of the record before it.  Every body is
also a leaf of the store-wide Merkle tree: leaf hash ``sha256(0x00 || body)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, cast

_loads: Callable[[bytes | str], Any]
try:  # orjson parses several times faster; the stdlib is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is installed in the project's environments
    _loads = json.loads

__all__ = [
    "RECORD_FIELDS",
    "RESULT_KIND",
    "ZERO_HASH",
    "RecordError",
    "StoredRecord",
    "canonical_json",
    "digest",
    "loads",
    "make_record",
    "parse_body",
    "record_leaf_hash",
]

ZERO_HASH = "sha256:" + "0" * 64
"""``prev_entry_hash`` of the first record of every execution."""

RESULT_KIND = "execution.result"
"""Kind of an execution's final record, whose ``data`` holds the digest of its PlanResult."""

RECORD_FIELDS = frozenset({"seq", "execution_id", "kind", "at", "data", "prev_entry_hash", "step_id", "attempt"})
"""Every field a record body may hold (``step_id`` and ``attempt`` are optional)."""

_REQUIRED = ("seq", "execution_id", "kind", "at", "data", "prev_entry_hash")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class RecordError(ValueError):
    """A record or record body does not follow the journal record format."""


def loads(data: bytes | str) -> Any:
    """Parse JSON text: orjson when available, the stdlib for what orjson refuses (so the stdlib decides)."""
    try:
        return _loads(data)
    except ValueError:
        if _loads is json.loads:
            raise
        return json.loads(data)


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON (§0.1): sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")


def digest(body: bytes) -> str:
    """``"sha256:" + hex`` of already-canonical bytes (§0.2)."""
    return "sha256:" + sha256(body).hexdigest()


def record_leaf_hash(body: bytes) -> bytes:
    """The Merkle leaf hash of a record body: ``sha256(0x00 || body)``."""
    return sha256(b"\x00" + body).digest()


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One journal record as the store keeps it: the body bytes plus the columns indexed beside it.

    ``execution_id``, ``seq`` and ``kind`` repeat fields of the body; verification checks that they
    agree.  ``leaf_index`` is the record's 0-based position in the store-wide log (``None`` before
    the store assigns it).
    """

    execution_id: str
    seq: int
    kind: str
    body: bytes
    entry_hash: str
    leaf_index: int | None = None

    @property
    def leaf_hash(self) -> bytes:
        """Merkle leaf hash of :attr:`body`."""
        return record_leaf_hash(self.body)

    def with_leaf_index(self, leaf_index: int) -> StoredRecord:
        """A copy placed at ``leaf_index``."""
        return StoredRecord(self.execution_id, self.seq, self.kind, self.body, self.entry_hash, leaf_index)

    def to_dict(self) -> dict[str, Any]:
        """The parsed record body."""
        return parse_body(self.body)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _well_formed(obj: Any) -> bool:
    """Fast check that a parsed body is a valid record (the common case); :func:`_validate` explains failures."""
    if type(obj) is not dict or not obj.keys() <= RECORD_FIELDS:
        return False
    g = obj.get
    eid, seq, kind, prev, at = g("execution_id"), g("seq"), g("kind"), g("prev_entry_hash"), g("at")
    return (
        type(eid) is str
        and type(seq) is int
        and type(kind) is str
        and type(prev) is str
        and type(at) is int
        and type(g("data")) is dict
        and seq >= 0
        and at >= 0
        and eid != ""
        and kind != ""
        and _DIGEST_RE.fullmatch(prev) is not None
        and ("step_id" not in obj or type(obj["step_id"]) is str)
        and ("attempt" not in obj or (type(obj["attempt"]) is int and obj["attempt"] >= 1))
    )


def _validate(obj: Any) -> dict[str, Any]:
    """Check a parsed body against the record format; returns it, raises :class:`RecordError`."""
    if _well_formed(obj):
        return cast(dict[str, Any], obj)
    if not isinstance(obj, dict):
        raise RecordError(f"record must be a JSON object, got {type(obj).__name__}")
    missing = [f for f in _REQUIRED if f not in obj]
    if missing:
        raise RecordError(f"record lacks field(s): {', '.join(missing)}")
    extra = sorted(set(obj) - RECORD_FIELDS)
    if extra:
        raise RecordError(f"record has unknown field(s): {', '.join(extra)}")
    if not _is_int(obj["seq"]) or obj["seq"] < 0:
        raise RecordError(f"record 'seq' must be a non-negative integer, got {obj['seq']!r}")
    if not isinstance(obj["execution_id"], str) or not obj["execution_id"]:
        raise RecordError("record 'execution_id' must be a non-empty string")
    if not isinstance(obj["kind"], str) or not obj["kind"]:
        raise RecordError("record 'kind' must be a non-empty string")
    if not _is_int(obj["at"]) or obj["at"] < 0:
        raise RecordError(f"record 'at' must be a non-negative integer (epoch ms), got {obj['at']!r}")
    if not isinstance(obj["data"], dict):
        raise RecordError("record 'data' must be an object")
    prev = obj["prev_entry_hash"]
    if not isinstance(prev, str) or not _DIGEST_RE.fullmatch(prev):
        raise RecordError(f"record 'prev_entry_hash' must be 'sha256:' + 64 lowercase hex, got {prev!r}")
    if "step_id" in obj and not isinstance(obj["step_id"], str):
        raise RecordError("record 'step_id' must be a string when present")
    if "attempt" in obj and (not _is_int(obj["attempt"]) or obj["attempt"] < 1):
        raise RecordError(f"record 'attempt' must be a positive integer when present, got {obj['attempt']!r}")
    return cast(dict[str, Any], obj)


def parse_body(body: bytes | str) -> dict[str, Any]:
    """Parse and validate a record body; raises :class:`RecordError` when it is not a valid record."""
    try:
        obj = loads(body)
    except ValueError as exc:  # json.JSONDecodeError and orjson.JSONDecodeError are ValueErrors
        raise RecordError(f"record body is not valid JSON: {exc}") from None
    return _validate(obj)


def make_record(
    execution_id: str,
    seq: int,
    kind: str,
    at: int,
    data: dict[str, Any],
    prev_entry_hash: str,
    *,
    step_id: str | None = None,
    attempt: int | None = None,
    leaf_index: int | None = None,
) -> StoredRecord:
    """Build a record: canonical body, ``entry_hash``, and the columns a store indexes.

    Raises :class:`RecordError` if a field has the wrong type or ``data`` is not canonical-JSON-able.
    """
    obj: dict[str, Any] = {
        "seq": seq,
        "execution_id": execution_id,
        "kind": kind,
        "at": at,
        "data": data,
        "prev_entry_hash": prev_entry_hash,
    }
    if step_id is not None:
        obj["step_id"] = step_id
    if attempt is not None:
        obj["attempt"] = attempt
    _validate(obj)
    try:
        body = canonical_json(obj)
    except (TypeError, ValueError) as exc:  # non-JSON types, NaN, lone surrogates
        raise RecordError(f"record data is not canonical-JSON serialisable: {exc}") from None
    return StoredRecord(execution_id, seq, kind, body, digest(body), leaf_index)
