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
