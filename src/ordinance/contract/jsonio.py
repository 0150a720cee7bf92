"""Strict JSON reading: the §0.6 input-hygiene gate.

A document is rejected — before any other rule runs — when it has a duplicate object key, NaN or
Infinity (including a number literal that overflows to infinity, such as ``1e400``), a lone UTF-16
surrogate (raw or as a ``\\ud800`` escape), invalid UTF-8, nesting deeper than ``max_depth``
containers, a top level that is not an object, or more than ``max_bytes`` bytes.

Nesting depth counts containers: ``{}`` has depth 1, ``{"a": []}`` depth 2. Size is measured on the
raw UTF-8 input; for a document that is already parsed it is the size of its canonical form (§0.1).

Two entry points: :func:`load_document` for raw bytes or text, :func:`check_document` for a value
that is already parsed (it must then consist of exactly the types :func:`json.loads` produces).
Both raise :class:`DocumentError`, never anything else.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .canonical import canonical_json

__all__ = ["DocumentError", "json_type", "load_document", "check_document", "read_document", "MAX_BYTES", "MAX_DEPTH"]

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64


class DocumentError(ValueError):
    """A §0.6 input-hygiene failure; ``str(exc)`` is a one-line explanation."""


# -- parsing ---------------------------------------------------------------------------------


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DocumentError(f"duplicate object key {_short(key)}")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise DocumentError(f"number {_short(text)} overflows to infinity")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_hook, parse_constant=_reject_constant, parse_float=_finite_float, strict=True
)

#: Every byte except ``"[]{}`` (used to reduce a document to its bracket skeleton).
_NON_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING_SKELETON = re.compile(rb'"[^"]*"')
_BRACKETS = bytes.maketrans(b"{}", b"[]")
#: A ``\uD800``–``\uDFFF`` escape (after escaped backslashes have been removed).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")


_SURROGATE_MESSAGE = "a string holds a lone UTF-16 surrogate"


def _short(text: str, limit: int = 40) -> str:
    shown = json.dumps(text, ensure_ascii=True)
    return shown if len(shown) <= limit else shown[: limit - 4] + '..."'


def _too_deep(max_depth: int) -> DocumentError:
    return DocumentError(f"nesting is deeper than {max_depth} levels")


def _bracket_depth_exceeds(unescaped: bytes, max_depth: int) -> bool:
    """Whether the container nesting of a *valid* JSON text exceeds ``max_depth``.

    ``unescaped`` is the UTF-8 text with ``\\\\`` and ``\\"`` escapes removed, so every remaining
    ``"`` delimits a string. Strings are dropped, brackets normalised, and innermost ``[]`` pairs
    removed one layer per pass: the number of passes is the depth.
    """
    if unescaped.count(b"[") + unescaped.count(b"{") <= max_depth:
        return False
    # Adjacent quotes are an empty string or the end of one string and the start of the next with no
    # bracket between them: dropping them never moves a bracket across a string boundary.
    skeleton = unescaped.translate(None, _NON_SKELETON).replace(b'""', b"")
    if b'"' in skeleton:  # some string holds a bracket
        skeleton = _STRING_SKELETON.sub(b"", skeleton)
    skeleton = skeleton.translate(_BRACKETS)
    depth = 0
    while skeleton:
        depth += 1
        if depth > max_depth:
            return True
        skeleton = skeleton.replace(b"[]", b"")
    return False


def _walk_strings_for_surrogates(value: Any) -> bool:
    """Whether any string (key or value) in a parsed document holds a lone surrogate."""
    search = _SURROGATE_CHAR.search
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            for key, item in node.items():
                if search(key):
                    return True
                stack.append(item)
        elif type(node) is list:
            stack.extend(node)
        elif type(node) is str and search(node):
            return True
    return False


def load_document(data: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_BYTES,
                  max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Strictly read one JSON object from raw UTF-8 bytes or text (§0.6).

    Raises :class:`DocumentError` with a one-line reason on any hygiene failure.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise DocumentError(_SURROGATE_MESSAGE) from None
        text = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        text = None
    else:
        raise DocumentError(f"expected JSON text or bytes, got {type(data).__name__}")
    if len(raw) > max_bytes:
        raise DocumentError(f"document is {len(raw)} bytes, over the {max_bytes}-byte limit")
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except DocumentError:
        raise
    except RecursionError:
        raise _too_deep(max_depth) from None
    except json.JSONDecodeError as exc:
        raise DocumentError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, TypeError, OverflowError):  # int() refuses a literal with too many digits
        raise DocumentError("invalid JSON: a number literal has too many digits") from None
    if type(value) is not dict:
        raise DocumentError(f"top level must be an object, got {json_type(value)}")
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    if _bracket_depth_exceeds(unescaped, max_depth):
        raise _too_deep(max_depth)
    if _SURROGATE_ESCAPE.search(unescaped) and _walk_strings_for_surrogates(value):
        raise DocumentError(_SURROGATE_MESSAGE)
    return value


# -- already-parsed values -------------------------------------------------------------------

def json_type(value: Any) -> str:
    """The JSON type name of a value (``"boolean"`` for a bool, never ``"integer"``), else its Python type name."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    if kind is str:
        return "string"
    if kind is list:
        return "array"
    if kind is dict:
        return "object"
    return kind.__name__


_BIG_INT = 10**18  # an int below this in magnitude prints in at most 19 characters
_MAX_SCALAR_CHARS = 24  # a float's repr, true/false/null and small ints print in at most 24 characters


def _walk(value: Any, max_depth: int, max_bytes: int) -> tuple[list[str], int]:
    """One iterative pass (level by level) over an already-parsed value.

    Checks exact JSON types, string keys, finite floats and the depth limit; returns every string
    (keys and values) and an upper bound of the canonical size of everything except the strings.
    """
    strings: list[str] = []
    add_string, add_strings = strings.append, strings.extend
    bound = 0
    count = 0
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise _too_deep(max_depth)
        below: list[Any] = []
        push = below.append
        for node in level:
            items = len(node)
            # brackets, separators, and room for a scalar of up to 24 characters per item
            bound += (2 + _MAX_SCALAR_CHARS) * items + 2
            count += items
            if count > max_bytes:  # every item takes at least a byte (this also stops shared-reference blow-ups)
                raise DocumentError(f"document has {count}+ values, over the {max_bytes}-byte limit")
            if type(node) is dict:
                values = node.values()
                for key in node:
                    if type(key) is not str:
                        raise DocumentError(f"object key {key!r} is not a string")
                add_strings(node)
            else:
                values = node
            for item in values:
                kind = type(item)
                if kind is str:
                    add_string(item)
                elif kind is dict or kind is list:
                    push(item)
                elif kind is int:
                    if not -_BIG_INT < item < _BIG_INT:
                        bound += len(str(item))
                elif kind is float:
                    if item - item != 0.0:
                        raise DocumentError("NaN or Infinity is not a JSON number")
                elif kind is not bool and item is not None:
                    raise DocumentError(f"a value of type {kind.__name__} is not JSON")
        level = below
    return strings, bound


def check_document(value: Any, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> None:
    """Apply §0.6 to an already-parsed value.

    Raises :class:`DocumentError` on a non-object top level, a non-JSON type (only ``dict``,
    ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None`` are accepted, exactly), a non-string
    key, NaN/Infinity, a lone surrogate, nesting deeper than ``max_depth`` or a canonical form (§0.1)
    over ``max_bytes``. The size is bounded from the walk; the canonical form is only built when
    the bound is inconclusive.
    """
    if type(value) is not dict:
        raise DocumentError(f"top level must be an object, got {json_type(value)}")
    try:
        strings, bound = _walk(value, max_depth, max_bytes)
    except RecursionError:  # pragma: no cover - the walk is iterative
        raise _too_deep(max_depth) from None
    joined = "".join(strings)
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        raise DocumentError(_SURROGATE_MESSAGE) from None
    # a string prints as its two quotes plus at most 6 bytes per character (\u001f)
    if bound + 2 * len(strings) + 6 * len(joined) <= max_bytes:
        return
    try:
        size = len(canonical_json(value).encode("utf-8"))
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - excluded by the walk
        raise DocumentError(f"not a JSON document: {exc}") from None
    if size > max_bytes:
        raise DocumentError(f"document is {size} bytes in canonical form, over the {max_bytes}-byte limit")


def read_document(data: Any, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Raw bytes/text → :func:`load_document`; anything else → :func:`check_document`. Returns the object."""
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        return load_document(data, max_bytes=max_bytes, max_depth=max_depth)
    check_document(data, max_bytes=max_bytes, max_depth=max_depth)
    return data
