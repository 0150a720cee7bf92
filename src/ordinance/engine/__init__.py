"""The engine: admission, scheduling, attempts, hard timeouts, outcome rule sets, recovery."""

from .engine import DEFAULT_LEASE_MS, MAX_NESTING_DEPTH, Engine
from .events import CallbackSink, EventBus, JsonlSink, WebhookSink

__all__ = ["DEFAULT_LEASE_MS", "MAX_NESTING_DEPTH", "Engine", "CallbackSink", "EventBus", "JsonlSink", "WebhookSink"]
