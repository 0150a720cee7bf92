"""The policy envelope (CONTRACT §6.2): set by the operator, only ever narrowed by a context."""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..contract.canonical import digest

__all__ = ["Envelope", "Decision", "EnvelopeError", "DEFAULT_PROTECTED"]

DEFAULT_PROTECTED = (".git/", ".ordinance/")


class EnvelopeError(ValueError):
    """An envelope configuration that cannot be used (unknown field, wrong type)."""


@dataclass(frozen=True)
class Decision:
    """One policy decision, journaled as ``policy.decision`` (§6.3)."""

    check: str  # "authorization" | "envelope" | "budget" | "nesting"
    verdict: str  # "allow" | "deny"
    reason: str
    action: str | None = None
    path: str | None = None
    step_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


@dataclass(frozen=True)
class Envelope:
    """What any plan may do here. Globs use :func:`fnmatch.fnmatchcase` (``*`` also matches ``/``)."""

    workspace: str = "."
    allowed_paths: tuple[str, ...] = ("*",)
    denied_paths: tuple[str, ...] = ()
    allowed_actions: tuple[str, ...] = ("*",)
    allowed_roles: tuple[str, ...] | None = None
    reject_symlinks: bool = True
    max_budget_usd: float | None = None
    timeout_seconds: int | None = None
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED
    custom_compensation_commands: tuple[str, ...] = field(default=())

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "Envelope":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EnvelopeError(f"unknown envelope field(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(cls, key, None)
            if key in ("workspace",):
                if not isinstance(value, str):
                    raise EnvelopeError(f"envelope.{key} must be a string")
                kwargs[key] = value
            elif key in ("reject_symlinks",):
                if not isinstance(value, bool):
                    raise EnvelopeError(f"envelope.{key} must be a boolean")
                kwargs[key] = value
            elif key == "max_budget_usd":
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                    raise EnvelopeError("envelope.max_budget_usd must be a non-negative number")
                kwargs[key] = value
            elif key == "timeout_seconds":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    raise EnvelopeError("envelope.timeout_seconds must be a positive integer")
                kwargs[key] = value
            else:
                if value is None and key == "allowed_roles":
                    kwargs[key] = None
                    continue
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise EnvelopeError(f"envelope.{key} must be a list of strings")
                kwargs[key] = tuple(value)
            del default
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str) -> "Envelope":
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
        if not isinstance(data, dict):
            raise EnvelopeError(f"{path}: the envelope must be a JSON object")
        env = cls.from_mapping(data)
        if not os.path.isabs(env.workspace):
            env = replace(env, workspace=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), env.workspace)))
        return env

    def resolved(self) -> "Envelope":
        """The envelope with an absolute workspace path."""
        return replace(self, workspace=os.path.abspath(self.workspace))

    def narrow(self, data: dict[str, Any]) -> "Envelope":
        """A narrower envelope: a context may restrict, never widen (§6.2, §5.4)."""
        other = Envelope.from_mapping({**data, "workspace": data.get("workspace", self.workspace)})
        if os.path.abspath(other.workspace) != os.path.abspath(self.workspace):
            raise EnvelopeError("a context cannot change the workspace")
        budget = self.max_budget_usd
        if other.max_budget_usd is not None:
            budget = other.max_budget_usd if budget is None else min(budget, other.max_budget_usd)
        timeout = self.timeout_seconds
        if other.timeout_seconds is not None:
            timeout = other.timeout_seconds if timeout is None else min(timeout, other.timeout_seconds)
        # Narrowing lists: an extra allow-list must also be passed (both apply), deny lists add up.
        return _NarrowedEnvelope(
            workspace=self.workspace,
            allowed_paths=self.allowed_paths,
            denied_paths=tuple(dict.fromkeys(self.denied_paths + other.denied_paths)),
            allowed_actions=self.allowed_actions,
            allowed_roles=self.allowed_roles,
            reject_symlinks=self.reject_symlinks or other.reject_symlinks,
            max_budget_usd=budget,
            timeout_seconds=timeout,
            protected_paths=tuple(dict.fromkeys(self.protected_paths + other.protected_paths)),
            custom_compensation_commands=self.custom_compensation_commands,
            extra_allowed_paths=other.allowed_paths if "allowed_paths" in data else None,
            extra_allowed_actions=other.allowed_actions if "allowed_actions" in data else None,
        )

    # -- decisions ---------------------------------------------------------------------------------------------
    def digest(self) -> str:
        """Digest of the policy in force, recorded with every decision (§6.3)."""
        doc = asdict(self)
        doc["workspace"] = os.path.abspath(self.workspace)
        return digest(doc)

    def check_action(self, action: str) -> tuple[bool, str]:
        for lists in self._action_lists():
            if not any(fnmatch.fnmatchcase(action, g) for g in lists):
                return False, f"action {action} is not in allowed_actions"
        return True, "action allowed"

    def check_path(self, path: str, *, write: bool) -> tuple[bool, str]:
        """String-level policy on a normalised relative path (the fd-level walk happens at use, §6.2)."""
        for g in self.denied_paths:
            if fnmatch.fnmatchcase(path, g):
                return False, f"path {path} matches denied_paths {g!r}"
        for lists in self._path_lists():
            if not any(fnmatch.fnmatchcase(path, g) for g in lists):
                return False, f"path {path} is not in allowed_paths"
        if write and self.is_protected(path):
            return False, f"path {path} is protected (self-modification protection)"
        return True, "path allowed"

    def is_protected(self, path: str) -> bool:
        for p in self.protected_paths:
            if p.endswith("/"):
                if path == p[:-1] or path.startswith(p):
                    return True
            elif path == p:
                return True
        return False

    def _action_lists(self) -> list[tuple[str, ...]]:
        return [self.allowed_actions]

    def _path_lists(self) -> list[tuple[str, ...]]:
        return [self.allowed_paths]


@dataclass(frozen=True)
class _NarrowedEnvelope(Envelope):
    extra_allowed_paths: tuple[str, ...] | None = None
    extra_allowed_actions: tuple[str, ...] | None = None

    def _action_lists(self) -> list[tuple[str, ...]]:
        return [self.allowed_actions] + ([self.extra_allowed_actions] if self.extra_allowed_actions else [])

    def _path_lists(self) -> list[tuple[str, ...]]:
        return [self.allowed_paths] + ([self.extra_allowed_paths] if self.extra_allowed_paths else [])
