"""§0/§8: the journal record format, canonical body and entry hash."""

from __future__ import annotations

import hashlib
import json

import pytest

from ordinance.ledger.records import (
    ZERO_HASH,
    RecordError,
    StoredRecord,
    canonical_json,
    digest,
    make_record,
    parse_body,
    record_leaf_hash,
)

EID = "7a1c3f0e-8a4b-4c2d-9e6f-0123456789ab"


def test_s8_body_is_canonical_json_and_entry_hash_its_digest() -> None:
    """§0.1/§0.2/§8: body = canonical JSON of the record; entry_hash = sha256: + hex of the body."""
    rec = make_record(EID, 0, "execution.started", 1_700_000_000_000, {"b": 1, "a": "é"}, ZERO_HASH)
    expected = json.dumps(
        {
            "seq": 0,
            "execution_id": EID,
            "kind": "execution.started",
            "at": 1_700_000_000_000,
            "data": {"b": 1, "a": "é"},
            "prev_entry_hash": ZERO_HASH,
        },
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
    assert rec.body == expected == canonical_json(parse_body(rec.body))
    assert rec.entry_hash == "sha256:" + hashlib.sha256(expected).hexdigest() == digest(expected)
    assert rec.leaf_hash == hashlib.sha256(b"\x00" + expected).digest() == record_leaf_hash(expected)
    assert (rec.execution_id, rec.seq, rec.kind, rec.leaf_index) == (EID, 0, "execution.started", None)
    assert ZERO_HASH == "sha256:" + "0" * 64


def test_s8_optional_fields_are_omitted_when_absent() -> None:
    """§8: step_id and attempt appear only when given."""
    bare = parse_body(make_record(EID, 0, "k", 1, {}, ZERO_HASH).body)
    assert "step_id" not in bare and "attempt" not in bare
    full = make_record(EID, 1, "step.started", 2, {}, ZERO_HASH, step_id="s1", attempt=2, leaf_index=9)
    body = parse_body(full.body)
    assert body["step_id"] == "s1" and body["attempt"] == 2 and full.leaf_index == 9
    assert full.with_leaf_index(3).leaf_index == 3 and full.with_leaf_index(3).body == full.body


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq": -1},
        {"seq": True},
        {"seq": 1.0},
        {"at": "1"},
        {"at": False},
        {"data": []},
        {"data": {"x": float("nan")}},
        {"data": {"x": "\ud800"}},
        {"data": {"x": object()}},
        {"prev_entry_hash": "sha256:" + "A" * 64},
        {"prev_entry_hash": "0" * 64},
        {"execution_id": ""},
        {"kind": ""},
        {"attempt": 0},
        {"attempt": True},
        {"step_id": 5},
    ],
)
def test_s8_make_record_rejects_bad_fields(kwargs: dict) -> None:
    """§0/§8: JSON integers are never booleans or floats; NaN and lone surrogates are refused."""
    args = {"execution_id": EID, "seq": 0, "kind": "k", "at": 1, "data": {}, "prev_entry_hash": ZERO_HASH}
    extra = {k: kwargs.pop(k) for k in ("step_id", "attempt") if k in kwargs}
    args.update(kwargs)
    with pytest.raises(RecordError):
        make_record(**args, **extra)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{",
        b"\xff",
        b'{"seq":0}',
        b'{"at":1,"data":{},"execution_id":"e","kind":"k","prev_entry_hash":"'
        + ZERO_HASH.encode()
        + b'","seq":0,"x":1}',
    ],
)
def test_s8_parse_body_rejects_non_records(body: bytes) -> None:
    """§8: a body that is not a record raises RecordError."""
    with pytest.raises(RecordError):
        parse_body(body)


def test_s8_stored_record_is_immutable() -> None:
    """§8: records are values; a change makes a new record."""
    rec = make_record(EID, 0, "k", 1, {}, ZERO_HASH)
    with pytest.raises(AttributeError):
        rec.body = b"{}"  # type: ignore[misc]
    assert isinstance(rec, StoredRecord)


def test_s0_stdlib_json_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """§0/§8: without orjson the stdlib parser gives the same verification result."""
    from ordinance.ledger import records, verify_log
    from ordinance.ledger.synthetic import synthetic_log

    log = synthetic_log(120, executions=3, seed=1)
    fast = verify_log(log.records, completed_executions=log.completed)
    monkeypatch.setattr(records, "_loads", json.loads)
    assert records.loads(b'{"a":1}') == {"a": 1}
    slow = verify_log(log.records, completed_executions=log.completed)
    assert fast == slow and slow.ok


def test_s0_what_orjson_refuses_the_stdlib_decides() -> None:
    """§0: a body orjson cannot parse but the stdlib can (a lone surrogate escape) is still parsed."""
    from ordinance.ledger.records import loads

    assert loads(b'{"a":"\\ud800"}') == {"a": "\ud800"}
    with pytest.raises(ValueError):
        loads(b"{bad")
