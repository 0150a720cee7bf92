"""The action registry: what a step's ``action`` names (CONTRACT §12, §7).

An action is a function with an input model. ``async`` functions run in the engine's
event loop and are cancelled at their deadline; plain (synchronous) functions run in a
killable worker process (§5.3) — in-thread synchronous code is never run.

    from pydantic import BaseModel
    from ordinance import actions

    class Greet(BaseModel):
        name: str

    @actions.action("demo.greet", input=Greet)
    async def greet(payload: Greet, ctx: actions.ActionContext) -> dict:
        return {"greeting": f"hello {payload.name}"}
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ValidationError

from ..contract.models import ACTION_PATTERN, CompensationType

__all__ = [
    "ActionFailure", "PolicyRefusal", "ActionContext", "StateSnapshot", "ActionSpec", "ActionRegistry", "default_registry", "action",
    "check_payload", "payload_errors",
]

import re

_ACTION_RE = re.compile(ACTION_PATTERN)


class ActionFailure(Exception):
    """Raised by an action to report failure (→ STEP_FAILED). ``recoverable=False`` stops retries."""

    def __init__(self, message: str, *, recoverable: bool = True, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.recoverable = recoverable
        self.details = details or {}


class PolicyRefusal(ActionFailure):
    """Raised by an action when the envelope refuses something only known at use (a path that a binding or an
    earlier step supplied, §6.2): the step fails with POLICY_DENIED, and the decision is journaled (§6.3)."""

    def __init__(self, message: str, *, check: str = "envelope", path: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, recoverable=False, details=details)
        self.check = check
        self.path = path


@dataclass(frozen=True)
class StateSnapshot:
    """The state an action declares it touches, digested (§7.1), plus what is needed to restore it."""

    digest: str
    restore: Any = None  # JSON-serialisable; e.g. previous file bytes (base64) and mode


@dataclass(frozen=True)
class ActionContext:
    """What an action sees of its execution. Picklable except ``runtime`` (dropped for worker processes)."""

    execution_id: str
    plan_id: str
    step_id: str
    attempt: int
    action: str
    workspace: str  # absolute path of the workspace root (§6.2)
    environment: Mapping[str, Any]  # read-only view (R-CTX-OPAQUE)
    deadline_ms: int  # epoch ms when this attempt is hard-stopped
    principal_user: str | None = None
    reject_symlinks: bool = True
    protected_paths: tuple[str, ...] = ()
    #: The envelope's path globs (§6.2), enforced at use for paths only a binding supplies. None = no allow-list.
    allowed_paths: tuple[str, ...] | None = None
    denied_paths: tuple[str, ...] = ()
    nesting_depth: int = 0
    runtime: Any = field(default=None, compare=False, repr=False)  # engine hook (execute_plan); None in workers

    def for_worker(self) -> "ActionContext":
        """A copy safe to send to a worker process."""
        from dataclasses import replace

        env = self.environment if isinstance(self.environment, dict) else dict(self.environment)
        return replace(self, environment=env, runtime=None)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Callable[..., Any]
    is_async: bool
    input_model: type[BaseModel] | None = None
    idempotent: bool = False  # §7.2: a key with a succeeded receipt is replayed, not re-run
    read_only: bool = False  # may serve as a deploy probe (§9)
    required_roles: tuple[str, ...] = ()
    cost_usd: float = 0.0  # estimated cost reserved against the budget (§6.2)
    #: Paths (workspace-relative) the action touches, from its payload, for envelope checks.
    paths: Callable[[dict[str, Any]], list[str]] | None = None
    #: Digest of the state the action touches (§7.1); run before and after each attempt, in-process.
    probe: Callable[[dict[str, Any], ActionContext], StateSnapshot] | None = None
    #: Built-in compensation (§7.3/§7.4): undo using the snapshot taken before the attempt.
    compensation_type: CompensationType = CompensationType.NONE
    compensate: Callable[[dict[str, Any], StateSnapshot, ActionContext], Any] | None = None
    description: str = ""
    #: An async action that finishes without suspending and uses nothing bound to its own task (current_task,
    #: asyncio.timeout, task groups): the engine runs it within the scheduler's turn, with no task or timer of
    #: its own (what a Pass state is to Step Functions). A result that comes back past the step's timeout is
    #: still discarded as STEP_TIMEOUT; one that suspends after all goes on in a task from where it stopped.
    inline: bool = False

    def parse_payload(self, payload: dict[str, Any]) -> Any:
        """The payload as the action receives it (a model instance, or the dict). Raises ValidationError."""
        if self.input_model is None:
            return payload
        return self.input_model.model_validate(payload)


def check_payload(spec: ActionSpec, payload: Any) -> tuple[Any, list[str]]:
    """(the payload as the action receives it, []) when it fits the action's input schema; else (None, problems)."""
    if not isinstance(payload, dict):
        return None, [f"payload must be an object, got {type(payload).__name__}"]
    try:
        return spec.parse_payload(payload), []
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_url=False):
            loc = "/" + "/".join(str(p) for p in err["loc"]) if err["loc"] else ""
            out.append(f"{loc or '/'}: {err['msg']}")
        return None, out


def payload_errors(spec: ActionSpec, payload: Any) -> list[str]:
    """Human-readable problems of ``payload`` against the action's input schema (empty when it fits)."""
    return check_payload(spec, payload)[1]


class ActionRegistry:
    """Name → :class:`ActionSpec`."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def register(self, spec: ActionSpec, *, replace: bool = False) -> ActionSpec:
        if not _ACTION_RE.match(spec.name):
            raise ValueError(f"action name {spec.name!r} does not match {ACTION_PATTERN}")
        if spec.name in self._specs and not replace:
            raise ValueError(f"action {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def action(
        self,
        name: str,
        *,
        input: type[BaseModel] | None = None,
        idempotent: bool = False,
        read_only: bool = False,
        roles: tuple[str, ...] | list[str] = (),
        cost_usd: float = 0.0,
        inline: bool = False,
        replace: bool = False,
        **extra: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``func`` as action ``name``. Returns ``func`` unchanged.

        ``inline=True`` (async functions only) declares an action that never suspends: see :attr:`ActionSpec.inline`.
        """

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.register(
                ActionSpec(
                    name=name,
                    func=func,
                    is_async=inspect.iscoroutinefunction(func),
                    input_model=input,
                    idempotent=idempotent,
                    read_only=read_only,
                    required_roles=tuple(roles),
                    cost_usd=cost_usd,
                    inline=inline and inspect.iscoroutinefunction(func),
                    description=(inspect.getdoc(func) or "").split("\n\n")[0],
                    **extra,
                ),
                replace=replace,
            )
            return func

        return decorate

    def get(self, name: str) -> ActionSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)

    def copy(self) -> "ActionRegistry":
        new = ActionRegistry()
        new._specs = dict(self._specs)
        return new


#: The process-wide registry; the built-in actions are added by :mod:`ordinance.actions.builtins`.
default_registry = ActionRegistry()
action = default_registry.action
