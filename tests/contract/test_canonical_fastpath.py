"""§0.1: canonical_bytes (orjson for float-free documents) is byte-identical to the contract's definition."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinance.contract.canonical import canonical_bytes


def definition(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")


scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
                         max_leaves=40)


@settings(max_examples=600, deadline=None)
@given(documents)
def test_s0_1_fast_path_equals_the_definition(doc):
    assert canonical_bytes(doc) == definition(doc)


@pytest.mark.parametrize("doc", [
    {"x": float("nan")}, [float("inf")], {"a": [1, {"b": float("-inf")}]},
])
def test_s0_1_nan_and_infinity_are_refused_like_the_definition(doc):
    with pytest.raises(ValueError):
        definition(doc)
    with pytest.raises(ValueError):
        canonical_bytes(doc)


def test_s0_1_edge_cases():
    for doc in [{"\u2028": "\u2029\x00\x1f\x7f\"\\"}, {"1": 1, "10": 2, "2": 3}, {"é": "ü", "a": "😀"},
                [2**63 - 1, -(2**63), 2**64], {"k": [True, False, None]}, {1: "int key"}, 1e16, 1e-5, 0.1]:
        assert canonical_bytes(doc) == definition(doc)


# Documents past the walk budget take the round-trip fast path (_large_fast_path): the same bytes as the
# definition, or the definition's own error, whatever they hold.

import datetime
import enum
import uuid
from collections import OrderedDict

from ordinance.contract import canonical


def _large(inner, n: int = canonical._FAST_PATH_CONTAINERS + 50) -> dict:
    return {"filler": [{"i": i, "s": f"sha256:{i:064x}"} for i in range(n)], "inner": inner}


@settings(max_examples=150, deadline=None)
@given(documents)
def test_s0_1_large_documents_equal_the_definition(doc):
    big = _large(doc)
    assert canonical_bytes(big) == definition(big)


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tag(str):
    pass


@pytest.mark.parametrize("inner", [
    1.5, [0.1, 2], -0.0, 1e16, 2**64, 2**80, (1, 2), Level.HIGH, Tag("x"), {"k": Tag("v")}, OrderedDict(a=1),
    {"\u2028é😀": "\x00"}, {1: "int key"},
], ids=repr)
def test_s0_1_large_documents_with_unusual_values_equal_the_definition(inner):
    big = _large(inner)
    assert canonical_bytes(big) == definition(big)


@pytest.mark.parametrize("inner", [
    float("nan"), float("inf"), uuid.UUID(int=7), Color.RED, datetime.datetime(2026, 1, 1), "\ud800", {1: 1, "a": 2},
], ids=repr)
def test_s0_1_large_documents_the_definition_refuses_are_refused(inner):
    big = _large(inner)
    with pytest.raises((TypeError, ValueError)) as expected:
        definition(big)
    with pytest.raises(type(expected.value)):
        canonical_bytes(big)


def test_s0_1_the_walk_says_float_free_not_float_free_or_too_large():
    assert canonical._float_free({"a": [1, "x", None, True, {"b": []}]}) is True
    assert canonical._float_free("s") is True and canonical._float_free(2**63) is False
    for bad in ({"a": 1.0}, [[0.5]], {"a": (1, {2: 3})}, {"a": 2**63}, {"a": -(2**63) - 1}, {"a": {1, 2}}, [b"x"]):
        assert canonical._float_free(bad) is False, bad
    assert canonical._float_free(_large(1)) is None
    assert canonical._float_free(_large(1), budget=10**6) is True


def test_s0_1_large_float_free_documents_do_take_the_fast_path():
    assert canonical._large_fast_path(_large({"a": [1, "b", None]})) == definition(_large({"a": [1, "b", None]}))
    assert canonical._large_fast_path(_large({"a": 1.0})) is None  # notation would differ: the definition encodes
    assert canonical._large_fast_path(_large(uuid.UUID(int=1))) is None  # orjson would accept what the definition refuses
