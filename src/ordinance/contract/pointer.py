"""RFC 6901 JSON Pointers, as used by violation paths (§1.4) and data bindings (§1.3)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MISSING", "escape", "unescape", "join", "split", "is_pointer", "resolve", "POINTER_RE"]

#: A pointer: empty (the whole document) or ``/``-separated reference tokens where ``~`` only starts ``~0``/``~1``.
POINTER_RE = re.compile(r"(?:/(?:[^~/]|~[01])*)*")


class _Missing:
    """Marker for "no value at this pointer" (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def escape(token: str) -> str:
    """Escape one reference token: ``~`` → ``~0``, ``/`` → ``~1``."""
    if "~" in token or "/" in token:
        return token.replace("~", "~0").replace("/", "~1")
    return token


def unescape(token: str) -> str:
    """Undo :func:`escape`."""
    if "~" in token:
        return token.replace("~1", "/").replace("~0", "~")
    return token


def join(base: str, *tokens: str | int) -> str:
    """``join("/steps", 3, "id") == "/steps/3/id"``; string tokens are escaped."""
    parts = [base]
    for token in tokens:
        parts.append("/")
        parts.append(str(token) if isinstance(token, int) else escape(token))
    return "".join(parts)


def is_pointer(value: object, *, allow_root: bool = True) -> bool:
    """Whether ``value`` is a syntactically valid JSON Pointer string."""
    if type(value) is not str:
        return False
    if not value:
        return allow_root
    return POINTER_RE.fullmatch(value) is not None


def split(pointer: str) -> list[str]:
    """The unescaped reference tokens of a valid pointer (``""`` → ``[]``)."""
    if not pointer:
        return []
    return [unescape(t) for t in pointer[1:].split("/")]


def resolve(doc: Any, pointer: str) -> Any:
    """The value at ``pointer`` in ``doc``, or :data:`MISSING`. Never raises."""
    if type(pointer) is not str or (pointer and not is_pointer(pointer)):
        return MISSING
    node = doc
    for token in split(pointer):
        if isinstance(node, dict):
            if token not in node:
                return MISSING
            node = node[token]
        elif isinstance(node, list):
            if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token[0] == "0"):
                return MISSING
            index = int(token)
            if index >= len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node
