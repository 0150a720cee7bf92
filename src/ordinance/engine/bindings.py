"""Data bindings (CONTRACT §1.3): values from dependencies' outputs written into a payload copy."""

from __future__ import annotations

import copy
from typing import Any, Mapping

__all__ = ["BindingError", "resolve_pointer", "apply_bindings", "split_pointer"]


class BindingError(ValueError):
    """A binding could not be applied; the step fails with INVALID_PAYLOAD."""


def split_pointer(pointer: str) -> list[str]:
    """RFC 6901 tokens of a pointer ("" → [])."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise BindingError(f"JSON pointer {pointer!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """The value at ``pointer`` in ``doc``; raises BindingError naming the token that failed."""
    cur = doc
    for i, token in enumerate(split_pointer(pointer)):
        where = "/" + "/".join(split_pointer(pointer)[: i + 1])
        if isinstance(cur, dict):
            if token not in cur:
                raise BindingError(f"{where} does not exist in the source output")
            cur = cur[token]
        elif isinstance(cur, list):
            if not (token.isdigit() and (token == "0" or not token.startswith("0"))):
                raise BindingError(f"{where}: {token!r} is not an array index")
            idx = int(token)
            if idx >= len(cur):
                raise BindingError(f"{where}: index {idx} is past the end (length {len(cur)})")
            cur = cur[idx]
        else:
            raise BindingError(f"{where}: cannot descend into a {type(cur).__name__}")
    return cur


def apply_bindings(payload: Mapping[str, Any], inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with each bound value written at its target pointer.

    ``inputs`` maps target pointer → Binding (``.step``, ``.pointer``) and ``outputs`` maps step id → output.
    Objects on the way are created; a pointer that crosses an array or a scalar is an error (§1.3).
    Bindings are applied in sorted target order, so the result is deterministic.
    """
    result = copy.deepcopy(dict(payload))
    for target in sorted(inputs):
        binding = inputs[target]
        value = resolve_pointer(outputs.get(binding.step), binding.pointer)
        tokens = split_pointer(target)
        if not tokens:
            raise BindingError("a binding target must point inside the payload, not replace it")
        cur: Any = result
        for depth, token in enumerate(tokens[:-1]):
            nxt = cur.get(token)
            if nxt is None and token not in cur:
                nxt = cur[token] = {}
            if not isinstance(nxt, dict):
                where = "/" + "/".join(tokens[: depth + 1])
                raise BindingError(f"binding target {target}: {where} is a {type(nxt).__name__}, not an object")
            cur = nxt
        cur[tokens[-1]] = copy.deepcopy(value)
    return result
