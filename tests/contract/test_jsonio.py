"""§0.6 input hygiene: every failure is R-JSON at "" and nothing else is reported (§1.4)."""

from __future__ import annotations

import json
import math

import pytest

from plan_builders import minimal_plan, valid_plan
from ordinance.contract.jsonio import MAX_BYTES, MAX_DEPTH, DocumentError, check_document, load_document
from ordinance.contract.validate import Violation, validate_context, validate_plan


def _only_r_json(violations: list[Violation]) -> bool:
    return len(violations) == 1 and violations[0].path == "" and violations[0].rule == "R-JSON"


def _with_metadata(raw_value: str) -> bytes:
    """A valid plan with ``"metadata": {"v": <raw_value>}`` (the raw value starts at nesting level 3)."""
    doc = minimal_plan()
    doc["metadata"] = {"v": "@@"}
    return json.dumps(doc).replace('"@@"', raw_value).encode("utf-8")


RAW_FAILURES = {
    "duplicate key at top": b'{"id": "a", "id": "b"}',
    "duplicate key nested": _with_metadata('{"a": {"k": 1, "k": 1}}'),
    "duplicate key differing only by escape": _with_metadata('{"a": 1, "\\u0061": 2}'),
    "NaN": _with_metadata("NaN"),
    "Infinity": _with_metadata("Infinity"),
    "-Infinity": _with_metadata("[-Infinity]"),
    "number overflowing to infinity": _with_metadata("1e400"),
    "integer literal with too many digits": _with_metadata("1" * 5000),
    "lone high surrogate escape": _with_metadata('"\\ud800"'),
    "lone low surrogate escape": _with_metadata('"x\\udc00y"'),
    "reversed surrogate pair": _with_metadata('"\\udc00\\ud800"'),
    "lone surrogate escape in a key": _with_metadata('{"\\udbff": 1}'),
    "uppercase surrogate escape": _with_metadata('"\\uD834"'),
    "surrogate encoded as UTF-8 (CESU)": _with_metadata('"@"').replace(b"@", b"\xed\xa0\x80"),
    "invalid UTF-8 byte": b'{"name": "\xff"}',
    "truncated UTF-8 sequence": b'{"name": "\xe2\x82"}',
    "overlong UTF-8": b'{"name": "\xc0\xaf"}',
    "UTF-8 BOM": b"\xef\xbb\xbf" + json.dumps(minimal_plan()).encode(),
    "UTF-16": json.dumps(minimal_plan()).encode("utf-16"),
    "top-level array": b"[]",
    "top-level string": b'"plan"',
    "top-level number": b"1",
    "top-level null": b"null",
    "empty input": b"",
    "whitespace only": b" \n",
    "syntax error": b'{"id": }',
    "trailing garbage": json.dumps(minimal_plan()).encode() + b" x",
    "two documents": b"{} {}",
    "single quotes": b"{'id': 1}",
    "trailing comma": b'{"id": 1,}',
    "raw control character in string": b'{"name": "a\x01b"}',
    "comment": b'{"id": 1 /* c */}',
    "nesting 65 deep": _with_metadata("[" * 63 + "]" * 63),
    "nesting 100000 deep": b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("raw", RAW_FAILURES.values(), ids=RAW_FAILURES.keys())
def test_hygiene_failure_is_R_JSON_at_root_alone(raw: bytes):
    out = validate_plan(raw)
    assert _only_r_json(out), out
    assert out[0].message


def test_R_JSON_suppresses_every_other_rule():
    """§1.4: a hygiene failure is reported alone, although this document breaks many plan rules too."""
    out = validate_plan(b'{"id": 1, "id": 2, "steps": "x", "extra": true}')
    assert out == [Violation("", "R-JSON", 'duplicate object key "id"')]


def test_depth_64_is_accepted_65_rejected_R_JSON():
    """Depth counts containers: plan object (1) → metadata (2) → 62 more levels is 64 in all."""
    assert validate_plan(_with_metadata("[" * 62 + "]" * 62)) == []
    assert validate_plan(_with_metadata('{"a":' * 62 + "1" + "}" * 62)) == []
    assert _only_r_json(validate_plan(_with_metadata("[" * 63 + "]" * 63)))
    assert _only_r_json(validate_plan(_with_metadata('{"a":' * 63 + "1" + "}" * 63)))


def test_brackets_inside_strings_do_not_count_as_depth_R_JSON():
    deep_looking = json.dumps("[" * 200 + '{\\"' * 50)
    assert validate_plan(_with_metadata('{"s": %s, "t": "]]]]"}' % deep_looking)) == []


def test_escaped_backslash_before_u_is_not_a_surrogate_R_JSON():
    assert validate_plan(_with_metadata('"\\\\ud800 is text"')) == []


def test_valid_surrogate_pair_is_fine_R_JSON():
    assert validate_plan(_with_metadata('"\\ud83d\\ude00 and \\uD834\\uDD1E"')) == []


def test_size_limit_exactly_8_MiB_accepted_one_more_byte_rejected_R_JSON():
    base = _with_metadata('"@"')
    pad = MAX_BYTES - len(base) + 1  # replaces the single "@" character
    exact = base.replace(b'"@"', b'"' + b"x" * pad + b'"')
    assert len(exact) == MAX_BYTES
    assert validate_plan(exact) == []
    over = exact.replace(b'"xx', b'"xxx', 1)
    assert len(over) == MAX_BYTES + 1
    assert _only_r_json(validate_plan(over))


def test_text_input_with_lone_surrogate_character_R_JSON():
    assert _only_r_json(validate_plan('{"name": "\ud800"}'))


def test_context_hygiene_is_R_JSON_too():
    assert _only_r_json(validate_context(b'{"execution_id": 1, "execution_id": 2}', valid_plan()))


# --- already-parsed documents -----------------------------------------------------------------


class _Thing:
    pass


PARSED_FAILURES = {
    "NaN in payload": {"metadata": {"x": math.nan}},
    "infinity in a list": {"metadata": [math.inf]},
    "tuple": {"steps": (1, 2)},
    "set": {"metadata": {1, 2}},
    "object": {"metadata": _Thing()},
    "bytes": {"name": b"x"},
    "int key": {"metadata": {1: "a"}},
    "None key": {"metadata": {None: "a"}},
    "lone surrogate value": {"name": "\udfff"},
    "lone surrogate key": {"metadata": {"\ud800": 1}},
    "too deep": {"metadata": json.loads("[" * 64 + "]" * 64)},  # 65 levels with the top
    "str subclass": {"name": type("S", (str,), {})("x")},
}


@pytest.mark.parametrize("doc", PARSED_FAILURES.values(), ids=PARSED_FAILURES.keys())
def test_parsed_document_hygiene_is_R_JSON(doc):
    assert _only_r_json(validate_plan(doc))


@pytest.mark.parametrize("value", [None, 1, "1", "[]", [], (), object(), 1.5, True])
def test_non_object_values_are_R_JSON(value):
    assert _only_r_json(validate_plan(value))


def test_self_referencing_document_is_R_JSON_not_a_hang():
    doc: dict = {}
    doc["self"] = doc
    assert _only_r_json(validate_plan(doc))


def test_shared_references_blow_up_is_bounded_R_JSON():
    node: list = []
    for _ in range(60):
        node = [node, node]  # 2^60 paths, 61 levels: rejected without walking them all
    assert _only_r_json(validate_plan({"metadata": node}))


def test_parsed_document_over_8_MiB_R_JSON():
    doc = minimal_plan()
    doc["metadata"] = {"blob": "x" * MAX_BYTES}
    assert _only_r_json(validate_plan(doc))
    doc["metadata"] = {"blob": "é" * (MAX_BYTES // 2)}  # 8 MiB of UTF-8 bytes, 4 Mi characters
    assert _only_r_json(validate_plan(doc))
    doc["metadata"] = {"blob": "x" * (MAX_BYTES // 2)}
    assert validate_plan(doc) == []


def test_check_document_accepts_exact_json_types():
    check_document({"a": [1, 2.5, True, None, "s", {"b": []}]})


def test_load_document_returns_the_object_and_raises_only_DocumentError():
    assert load_document(b'{"a": [1, 2.0, "\\u00e9"]}') == {"a": [1, 2.0, "é"]}
    with pytest.raises(DocumentError):
        load_document(b"[]")
    with pytest.raises(DocumentError):
        load_document(object())  # type: ignore[arg-type]
    assert MAX_DEPTH == 64 and MAX_BYTES == 8 * 1024 * 1024


def test_parsed_document_depth_64_accepted_R_JSON():
    doc = minimal_plan()
    doc["metadata"] = {"v": json.loads("[" * 62 + "]" * 62)}
    assert validate_plan(doc) == []
    doc["metadata"] = {"v": json.loads("[" * 63 + "]" * 63)}
    assert _only_r_json(validate_plan(doc))
