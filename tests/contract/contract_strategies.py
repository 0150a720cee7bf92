"""Hypothesis strategies for the contract tests: JSON-ish values and mutations of valid documents."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from plan_builders import valid_context, valid_plan


def _locations(node, path=()):
    """Every (path) to a value inside the document, containers included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from _locations(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield path + (i,)
            yield from _locations(value, path + (i,))


def _parent(doc, path):
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


_text = st.text(max_size=12).filter(lambda s: not s.endswith("\n"))
_floats = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**54), _floats, _text,
                     st.sampled_from(["retry", "halt", "skip", "control.noop", "/x", "", "STEP_FAILED"]),
                     st.just("00000000-1111-4111-a111-111111111111"))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(_text, inner, max_size=3)), max_leaves=6)


@st.composite
def mutated_plans(draw, values=_values, base=valid_plan):
    """A valid document with 1–3 random mutations: drop a field, replace a value, add a field, swap two values.

    The default ``values`` avoid the two documented JSON-Schema divergences (integral floats, a trailing newline).
    """
    doc = base()
    for _ in range(draw(st.integers(1, 3))):
        locations = list(_locations(doc))
        kind = draw(st.sampled_from(["drop", "replace", "add", "swap"]))
        path = draw(st.sampled_from(locations))
        parent, key = _parent(doc, path)
        if kind == "drop":
            del parent[key]
        elif kind == "replace":
            parent[key] = draw(values)
        elif kind == "add":
            target = parent if isinstance(parent, dict) else doc
            target[draw(_text)] = draw(values)
        else:
            other_parent, other_key = _parent(doc, draw(st.sampled_from(locations)))
            try:
                parent[key], other_parent[other_key] = other_parent[other_key], parent[key]
            except (KeyError, IndexError, TypeError):
                pass
    return doc


#: Anything JSON can hold and a little more: NaN/Infinity, lone surrogates, huge integers, deep-ish nesting.
_wild_text = st.one_of(st.text(max_size=10), st.text(st.characters(min_codepoint=0xD7FF, max_codepoint=0xE000), max_size=3))
_wild_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _wild_text,
                          st.sampled_from([math.nan, math.inf, 2**53, 2**53 - 1, 1.0, 0, -1, ""]))
wild_values = st.recursive(_wild_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(_wild_text, inner, max_size=4)),
                           max_leaves=20)
wild_objects = st.dictionaries(_wild_text, wild_values, max_size=6)


def mutated_contexts():
    return mutated_plans(values=wild_values, base=valid_context)
