"""What every check gets: a temporary directory, a temporary SQLite store, a workspace and helpers.

Nothing here touches the user's ``.ordinance/`` or the current directory: the store, the workspace and
any key or file live under one temporary directory that is removed when the check ends.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["Harness", "sid", "ENV", "UUID4_RE"]

import re

#: The environment every made context carries (plans require ``TARGET``).
ENV: dict[str, Any] = {"TARGET": "conformance"}

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def sid(i: int) -> str:
    """A fixed lowercase UUID v4 for step number ``i``."""
    return f"00000000-0000-4000-8000-{i:012d}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Harness:
    """A sandbox for one check."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ordinance-conformance-"))
        self.workspace = self.root / "ws"
        self.workspace.mkdir()
        self.db_path = self.root / "store" / "ordinance.db"
        self._store: Any = None
        self._stores: list[Any] = []
        self._registry: Any = None

    # -- resources ------------------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        """The check's SQLite store (opened on first use)."""
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def open_store(self) -> Any:
        """Another connection to the same store file (as a second engine process would have)."""
        from ..store.sqlite import SQLiteStore

        st = SQLiteStore(str(self.db_path))
        self._stores.append(st)
        return st

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from .actions import conformance_registry

            self._registry = conformance_registry()
        return self._registry

    def engine(self, **kwargs: Any) -> Any:
        """An :class:`~ordinance.engine.Engine` on the check's store, workspace and registry."""
        from ..engine import Engine

        kwargs.setdefault("registry", self.registry)
        kwargs.setdefault("pool_size", 1)
        store = kwargs.pop("store", None) or self.store
        if "envelope" not in kwargs:
            kwargs.setdefault("workspace", str(self.workspace))
        return Engine(store, **kwargs)

    def close(self) -> None:
        for st in self._stores:
            try:
                st.close()
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    # -- documents ------------------------------------------------------------------------------------------
    def plan(self, *steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A valid v1 plan (a fresh plan id); steps get ids ``sid(1..n)`` unless they name one."""
        out = []
        for i, s in enumerate(steps, 1):
            s = dict(s)
            s.setdefault("id", sid(i))
            out.append(s)
        plan: dict[str, Any] = {
            "id": str(uuid.uuid4()), "version": 1, "name": "conformance plan", "created_at": 1, "steps": out,
            "context_requirements": ["TARGET"],
        }
        plan.update(fields)
        return plan

    def context(self, plan: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A valid context document for ``plan`` (a fresh execution id, now, deadline = now + timeout)."""
        now = now_ms()
        ctx: dict[str, Any] = {
            "execution_id": str(uuid.uuid4()), "plan_id": plan["id"], "started_at": now,
            "deadline_ms": now + int(plan.get("timeout_ms", 3_600_000)), "environment": dict(ENV),
        }
        ctx.update(fields)
        return ctx

    # -- running --------------------------------------------------------------------------------------------
    def run(self, plan: Any, context: Any = None, *, engine: Any = None, **kwargs: Any) -> Any:
        """Run ``plan`` to its PlanResult on ``engine`` (default: a fresh engine of this harness)."""
        if context is None and "environment" not in kwargs:
            kwargs["environment"] = dict(ENV)
        eng = engine or self.engine()
        return eng.run(plan, context, **kwargs)

    # -- reading the store ----------------------------------------------------------------------------------
    def records(self, execution_id: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.store.journal(execution_id)]

    def kinds(self, execution_id: str) -> list[str]:
        return [r.kind for r in self.store.journal(execution_id)]

    def outcome_kinds(self, execution_id: str) -> list[str]:
        return [k[len("outcome."):] for k in self.kinds(execution_id) if k.startswith("outcome.")]

    def file(self, rel: str) -> Path:
        return self.workspace / rel

    def write_file(self, rel: str, content: str) -> Path:
        p = self.workspace / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        return p

    def listdir(self, rel: str = "") -> list[str]:
        return sorted(os.listdir(self.workspace / rel)) if rel else sorted(os.listdir(self.workspace))


def statuses(result: Any) -> list[str]:
    """The step statuses of a PlanResult, in plan order."""
    return [s.status.value for s in result.step_results]


def code_of(result: Any) -> str | None:
    return result.error.error_code.value if result.error is not None else None


def describe(result: Any) -> str:
    """One line for messages: status, code, step statuses."""
    err = result.error
    code = f" {err.error_code.value}: {err.message[:160]}" if err is not None else ""
    return f"{result.status.value}{code}; steps {statuses(result)}"
