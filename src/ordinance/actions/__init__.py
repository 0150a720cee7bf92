"""Actions behind a small registry. Importing this package registers the built-in actions."""

from .registry import (
    ActionContext, ActionFailure, ActionRegistry, ActionSpec, PolicyRefusal, StateSnapshot, action, default_registry,
    payload_errors,
)

__all__ = [
    "ActionContext", "ActionFailure", "ActionRegistry", "ActionSpec", "PolicyRefusal", "StateSnapshot", "action", "default_registry",
    "payload_errors",
]
from . import builtins as _builtins  # noqa: F401  registers the built-in actions
