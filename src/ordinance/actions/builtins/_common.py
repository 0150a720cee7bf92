"""Shared pieces of the built-in actions: the payload base model and workspace access."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from ...governance.paths import DEFAULT_PROTECTED, PathDenied, WorkspaceFS
from ..registry import ActionContext, ActionFailure, PolicyRefusal

__all__ = ["Payload", "as_dict", "os_failure", "path_list", "workspace_fs"]


class Payload(BaseModel):
    """Base of the built-in input models: no extra fields, strict JSON types, no ``null`` for optional fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: Fields (by alias) for which an explicit JSON ``null`` is a meaningful value.
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_explicit_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key not in cls.NULLABLE and key in cls._known_keys():
                    raise ValueError(f"{key!r} must not be null (leave it out instead)")
        return data

    @classmethod
    def _known_keys(cls) -> set[str]:
        return {f.alias or name for name, f in cls.model_fields.items()}


def workspace_fs(ctx: ActionContext) -> WorkspaceFS:
    """The confined file access of ``ctx``'s workspace (§6.2).

    ``allowed_paths`` / ``denied_paths`` are honoured when the context carries them (so that a path
    supplied by a binding, unknown at admission, is held to the envelope's globs at use too).
    """
    allowed = getattr(ctx, "allowed_paths", None)
    return WorkspaceFS(
        ctx.workspace,
        reject_symlinks=ctx.reject_symlinks,
        protected=tuple(ctx.protected_paths) or DEFAULT_PROTECTED,
        denied_globs=tuple(getattr(ctx, "denied_paths", None) or ()),
        allowed_globs=None if allowed is None else tuple(allowed),
    )


def as_dict(payload: Any) -> dict[str, Any]:
    """A payload as a plain dict (probes and compensations may get the model or the raw dict)."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(by_alias=True, exclude_unset=True)
    return dict(payload)


def path_list(key: str) -> Any:
    """A ``paths`` callable returning ``[payload[key]]`` when it is present (for envelope checks)."""

    def paths(payload: dict[str, Any]) -> list[str]:
        value = payload.get(key) if isinstance(payload, dict) else None
        return [value] if isinstance(value, str) else []

    paths.__name__ = f"paths_{key}"
    return paths


def os_failure(exc: OSError, action: str) -> ActionFailure:
    """Map a file-system error to an ActionFailure; a confinement refusal is never recoverable."""
    if isinstance(exc, PathDenied):
        return PolicyRefusal(
            f"{action}: {exc}", path=exc.path,
            details={"error": "path_denied", "path": exc.path, "reason": exc.reason},
        )
    where = f": {exc.filename}" if exc.filename else ""
    return ActionFailure(
        f"{action}: {exc.strerror or exc}{where}",
        recoverable=False,
        details={"error": type(exc).__name__, "errno": exc.errno},
    )
