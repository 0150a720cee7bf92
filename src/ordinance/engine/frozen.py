"""Deeply read-only views of JSON values (R-CTX-OPAQUE: actions receive a read-only view of ``environment``).

``FrozenDict`` and ``FrozenList`` are real ``dict`` / ``list`` subclasses, so actions can read, iterate, serialise
(json, orjson) and pickle them (for worker processes) as usual; every mutating method raises ``TypeError``.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze"]


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("the execution environment is read-only (R-CTX-OPAQUE)")


class FrozenDict(dict):
    """A read-only dict."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> "FrozenDict":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "FrozenDict":
        return self


class FrozenList(list):
    """A read-only list."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> "FrozenList":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "FrozenList":
        return self


def freeze(value: Any) -> Any:
    """A deeply read-only copy of a JSON value (the caller's value is never touched)."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value
