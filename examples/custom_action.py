#!/usr/bin/env python3
"""Register actions of your own and run a plan from Python.

    python examples/custom_action.py

Uses a throw-away store and workspace under a temporary directory, so it leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from ordinance import Engine
from ordinance.actions import ActionContext, ActionFailure, default_registry


class Checksum(BaseModel):
    text: str


@default_registry.action("demo.checksum", input=Checksum)
def checksum(payload: Checksum, ctx: ActionContext) -> dict:
    """A plain function: it runs in a killable worker process, so a hang can never outlive its timeout."""
    return {"sha256": hashlib.sha256(payload.text.encode()).hexdigest()}


class Announce(BaseModel):
    channel: str
    message: str


@default_registry.action("demo.announce", input=Announce, idempotent=True)
async def announce(payload: Announce, ctx: ActionContext) -> dict:
    """An async function: cancelled at its deadline. Idempotent: a second run with the same payload replays."""
    if not payload.channel.startswith("#"):
        raise ActionFailure(f"not a channel: {payload.channel}", recoverable=False)
    return {"posted_to": payload.channel, "message": payload.message, "at": int(time.time())}


PLAN = {
    "id": "7d3f0e52-0c1a-4b6e-9a8d-2f4c6b8a0e13",
    "version": 1,
    "name": "checksum and announce",
    "created_at": 1767225600000,
    "context_requirements": ["CHANNEL"],
    "steps": [
        {"id": "a1b2c3d4-0000-4000-8000-000000000001", "name": "notes", "action": "fs.write",
         "payload": {"path": "NOTES.txt", "content": "release 2.0: faster, safer\n"}},
        {"id": "a1b2c3d4-0000-4000-8000-000000000002", "name": "read", "action": "fs.read",
         "payload": {"path": "NOTES.txt"}, "depends_on": ["a1b2c3d4-0000-4000-8000-000000000001"]},
        {"id": "a1b2c3d4-0000-4000-8000-000000000003", "name": "checksum", "action": "demo.checksum",
         "payload": {}, "depends_on": ["a1b2c3d4-0000-4000-8000-000000000002"],
         "inputs": {"/text": {"step": "a1b2c3d4-0000-4000-8000-000000000002", "pointer": "/content"}},
         "timeout_ms": 5000},
        {"id": "a1b2c3d4-0000-4000-8000-000000000004", "name": "announce", "action": "demo.announce",
         "payload": {"channel": "#releases"}, "depends_on": ["a1b2c3d4-0000-4000-8000-000000000003"],
         "inputs": {"/message": {"step": "a1b2c3d4-0000-4000-8000-000000000003", "pointer": "/sha256"}},
         "on_failure": "retry", "retry_policy": {"max_attempts": 3, "initial_delay_ms": 100}},
    ],
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp, "ws")
        workspace.mkdir()
        engine = Engine(str(Path(tmp, "ordinance.db")), workspace=str(workspace))
        result = engine.run(PLAN, environment={"CHANNEL": "#releases"})
        print(f"{result.status.value}: {result.steps_executed}/{result.steps_total} steps")
        for step in result.step_results:
            print(f"  {step.step_id[-4:]} {step.status.value:10} {step.output}")
        again = Engine(str(Path(tmp, "ordinance.db")), workspace=str(workspace)).run(
            PLAN, environment={"CHANNEL": "#releases"})
        print("second run, announce receipt:", again.step_results[3].receipt.status)
        engine.close()


if __name__ == "__main__":
    main()
