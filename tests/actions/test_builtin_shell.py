"""``shell.run`` (CONTRACT §12): real subprocesses, process groups killed at the hard stop (§5.3)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import proc_stats

from ordinance.actions import ActionFailure, default_registry, payload_errors
from ordinance.actions.builtins.shell import OUTPUT_LIMIT

pytestmark = pytest.mark.timeout(60)


def live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are still running (zombies awaiting their reaper are dead)."""
    out = []
    for pid, fields in proc_stats():
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(pid)
    return out


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not live_members(pgid)  # only unreaped zombies (reparented to an init that reaps late) remain


def test_s12_run_captures_exit_code_stdout_and_stderr(call: Callable[..., Any]) -> None:
    out = call("shell.run", {"argv": ["sh", "-c", "echo out; echo err >&2"]})
    assert out == {"exit_code": 0, "stdout": "out\n", "stderr": "err\n"}


def test_s12_argv_is_not_interpreted_by_a_shell(call: Callable[..., Any]) -> None:
    out = call("shell.run", {"argv": ["echo", "$HOME; rm -rf /", "*"]})
    assert out["stdout"] == "$HOME; rm -rf / *\n"


def test_s12_nonzero_exit_fails_unless_allowed(call: Callable[..., Any]) -> None:
    with pytest.raises(ActionFailure, match="exited with 3") as info:
        call("shell.run", {"argv": ["sh", "-c", "echo why >&2; exit 3"]})
    assert info.value.details["exit_code"] == 3 and "why" in info.value.details["stderr_tail"]
    assert info.value.recoverable is True
    assert call("shell.run", {"argv": ["sh", "-c", "exit 3"], "allow_nonzero": True})["exit_code"] == 3


def test_s12_missing_executable_is_a_non_recoverable_failure(call: Callable[..., Any]) -> None:
    with pytest.raises(ActionFailure, match="cannot execute") as info:
        call("shell.run", {"argv": ["definitely-not-a-command-ordinance"]})
    assert info.value.recoverable is False


def test_s12_stdin_is_fed(call: Callable[..., Any]) -> None:
    assert call("shell.run", {"argv": ["cat"], "stdin": "línea\n"})["stdout"] == "línea\n"
    # a command that ignores a large stdin does not hang or fail
    assert call("shell.run", {"argv": ["true"], "stdin": "x" * 1_000_000})["exit_code"] == 0


def test_s12_environment_is_minimal_and_never_leaks_the_engines(call: Callable[..., Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDINANCE_TEST_SECRET", "hunter2")
    out = call("shell.run", {"argv": ["env"], "env": {"GREETING": "hi"}})
    env = dict(line.split("=", 1) for line in out["stdout"].splitlines())
    assert env.get("GREETING") == "hi" and "PATH" in env
    assert "ORDINANCE_TEST_SECRET" not in env
    assert set(env) <= {"PATH", "GREETING", "PWD", "SHLVL", "_"}


def test_s6_2_s12_cwd_is_a_checked_workspace_directory(call: Callable[..., Any], workspace: Path,
                                                       tmp_path: Path) -> None:
    (workspace / "sub").mkdir()
    assert call("shell.run", {"argv": ["pwd", "-P"]})["stdout"].strip() == str(workspace.resolve())
    assert call("shell.run", {"argv": ["pwd", "-P"], "cwd": "sub"})["stdout"].strip() == str(
        (workspace / "sub").resolve())
    os.symlink(tmp_path, workspace / "escape")
    for cwd in ("escape", "../", "/tmp", "sub/../.."):
        with pytest.raises(ActionFailure) as info:
            call("shell.run", {"argv": ["pwd"], "cwd": cwd})
        assert info.value.details["error"] == "path_denied"
    with pytest.raises(ActionFailure):
        call("shell.run", {"argv": ["pwd"], "cwd": "missing"})


@pytest.mark.parametrize("payload", [
    {"argv": []}, {"argv": "ls"}, {"argv": [1]}, {"argv": [""]}, {"argv": ["a\x00b"]},
    {"argv": ["ls"], "timeout_ms": 5}, {"argv": ["ls"], "env": {"A": 1}}, {"argv": ["ls"], "env": {"A=B": "x"}},
    {"argv": ["ls"], "allow_nonzero": 1}, {"argv": ["ls"], "stdin": b"x"}, {"argv": ["ls"], "cwd": None},
])
def test_s5_0_s12_bad_static_payloads_are_invalid(payload: dict[str, Any]) -> None:
    spec = default_registry.get("shell.run")
    assert spec is not None
    assert payload_errors(spec, payload)


def test_s12_output_is_capped_without_deadlock(call: Callable[..., Any]) -> None:
    script = "import sys; sys.stdout.write('a' * 20_000_000); sys.stderr.write('b' * 20_000_000)"
    out = call("shell.run", {"argv": [sys.executable, "-c", script]})
    assert out["exit_code"] == 0
    assert len(out["stdout"]) == OUTPUT_LIMIT and set(out["stdout"]) == {"a"} and out["stdout_truncated"] is True
    assert len(out["stderr"]) == OUTPUT_LIMIT and out["stderr_truncated"] is True


def test_s12_invalid_utf8_output_is_replaced(call: Callable[..., Any]) -> None:
    out = call("shell.run", {"argv": ["printf", "ok\\377"]})
    assert out["stdout"] == "ok\ufffd"


def test_s5_3_s12_cancellation_kills_the_whole_process_group(make_ctx: Callable[..., Any],
                                                             workspace: Path) -> None:
    """The engine's hard stop cancels the task: the command *and its grandchildren* are SIGKILLed."""
    spec = default_registry.get("shell.run")
    assert spec is not None
    payload = spec.parse_payload({"argv": ["sh", "-c", "echo $$ > pid.txt; sleep 100 & sleep 100"]})

    async def main() -> int:
        task = asyncio.ensure_future(spec.func(payload, make_ctx()))
        deadline = time.monotonic() + 10
        pgid = 0
        while time.monotonic() < deadline:
            text = (workspace / "pid.txt").read_text() if (workspace / "pid.txt").exists() else ""
            if text.endswith("\n"):
                pgid = int(text)
                if len(live_members(pgid)) >= 2:  # the shell's children (incl. the background one) are up
                    break
            await asyncio.sleep(0.02)
        assert pgid and len(live_members(pgid)) >= 2
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 10
        return pgid

    pgid = asyncio.run(main())
    deadline = time.monotonic() + 5
    while not group_gone(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group_gone(pgid)


def test_s5_3_s12_a_timeout_around_the_step_stops_it(make_ctx: Callable[..., Any]) -> None:
    spec = default_registry.get("shell.run")
    assert spec is not None

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spec.func(spec.parse_payload({"argv": ["sleep", "100"]}), make_ctx()), 0.2)
        assert time.monotonic() - started < 10

    asyncio.run(main())


def test_s12_leftover_background_processes_do_not_outlive_the_step(call: Callable[..., Any]) -> None:
    started = time.monotonic()
    out = call("shell.run", {"argv": ["sh", "-c", "sleep 100 & echo $!; echo $$"]})
    assert time.monotonic() - started < 10  # did not wait for the background sleep's pipe
    bg, pgid = (int(x) for x in out["stdout"].split())
    deadline = time.monotonic() + 5
    while not group_gone(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group_gone(pgid) and bg not in live_members(pgid)
