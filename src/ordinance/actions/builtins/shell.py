"""``shell.run``: run a command in the workspace as its own process group (CONTRACT §5.3, §12).

Decisions where the contract is silent:

* No shell: ``argv`` is executed directly (``["sh", "-c", "..."]`` if a shell is wanted).
* Minimal environment: the child gets ``PATH`` (the engine's) plus the payload's ``env``, nothing
  else — the engine's own environment (credentials, tokens) is never leaked into commands.
* ``cwd`` is a workspace path, resolved on descriptors like every other path (§6.2); the child is
  started in the very directory that was checked (``/proc/self/fd/N``), so there is no window in
  which a swapped symlink could redirect it. Absent, the workspace root.
* The command leads a new session / process group. When the step is cancelled (hard timeout or
  plan stop) the whole group gets SIGKILL and the command is reaped before the cancellation goes on.
  When the command exits on its own, anything it left running *in its group* is killed too: a step's
  processes never outlive the step. (A process that deliberately leaves the group with ``setsid``
  escapes this; containing those needs cgroups, which are outside this action.)
* Output capture is bounded: at most :data:`OUTPUT_LIMIT` bytes of stdout and of stderr are kept
  (the rest is read and discarded, so the child never blocks on a full pipe) and
  ``stdout_truncated`` / ``stderr_truncated`` is ``true`` in the output when something was cut.
  Bytes are decoded as UTF-8 with replacement characters.
* A non-zero exit (or death by a signal, ``exit_code`` = −signal) fails the step — recoverable,
  with the exit code and the tails of the output in ``details`` — unless ``allow_nonzero``.
* The state a command touches is not declared: ``shell.run`` has no probe and no built-in
  compensation; use a step ``compensation`` (§7.4) where undo is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from pydantic import Field, StrictBool, StrictStr, field_validator

from ..registry import ActionContext, ActionFailure, default_registry
from ._common import Payload, os_failure, path_list, workspace_fs

__all__ = ["OUTPUT_LIMIT", "ShellRun", "run"]

#: Bytes of stdout and of stderr kept in the output.
OUTPUT_LIMIT = 1024 * 1024
_TAIL = 4000  # characters of output kept in a failure's details
_DRAIN_AFTER_EXIT_S = 2.0  # how long to wait for pipes to close once the group is gone
_PROC_FD = "/proc/self/fd"


class ShellRun(Payload):
    argv: list[StrictStr] = Field(min_length=1)
    cwd: StrictStr | None = None
    env: dict[StrictStr, StrictStr] | None = None
    stdin: StrictStr | None = None
    allow_nonzero: StrictBool = False

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if argv[0] == "":
            raise ValueError("argv[0] must not be empty")
        if any("\x00" in a for a in argv):
            raise ValueError("argv must not contain NUL bytes")
        return argv

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (env or {}).items():
            if key == "" or "=" in key or "\x00" in key:
                raise ValueError(f"invalid environment variable name {key!r}")
            if "\x00" in value:
                raise ValueError(f"environment variable {key!r} contains a NUL byte")
        return env


class _Capture:
    """Reads a pipe to EOF, keeping at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while True:
            chunk = await stream.read(256 * 1024)
            if not chunk:
                return
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that also reports the moment the command itself exits.

    (``Process.wait()`` only returns once every pipe is closed too, which a background grandchild
    holding stdout would postpone indefinitely.)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=256 * 1024, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _feed(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command does not read its stdin: not an error
    finally:
        writer.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await writer.wait_closed()


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


@default_registry.action("shell.run", input=ShellRun, paths=path_list("cwd"))
async def run(payload: ShellRun, ctx: ActionContext) -> dict[str, Any]:
    """Run ``argv`` (no shell) in workspace directory ``cwd`` as its own process group.

    Output: ``{"exit_code", "stdout", "stderr"}`` (+ ``stdout_truncated`` / ``stderr_truncated``).
    """
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    env.update(payload.env or {})
    try:
        stdin_data = payload.stdin.encode("utf-8") if payload.stdin is not None else b""
    except UnicodeEncodeError as exc:
        raise ActionFailure(f"shell.run: stdin is not encodable as UTF-8 ({exc.reason})", recoverable=False) from None
    try:
        cwd_fd = workspace_fs(ctx).open_directory(payload.cwd)
    except OSError as exc:
        raise os_failure(exc, "shell.run cwd") from None
    try:
        if os.path.isdir(_PROC_FD):
            cwd = f"{_PROC_FD}/{cwd_fd}"  # the child chdirs into the checked directory itself
        else:  # pragma: no cover - non-Linux fallback
            cwd = os.path.join(ctx.workspace, payload.cwd or "")
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(loop),
                *payload.argv,
                stdin=asyncio.subprocess.PIPE if payload.stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionFailure(
                f"shell.run: cannot execute {payload.argv[0]!r}: {exc.strerror or exc}", recoverable=False,
                details={"argv0": payload.argv[0], "errno": exc.errno},
            ) from None
        except ValueError as exc:  # e.g. an argument that cannot be encoded for exec
            raise ActionFailure(f"shell.run: cannot execute {payload.argv[0]!r}: {exc}", recoverable=False) from None
    finally:
        os.close(cwd_fd)

    proc = asyncio.subprocess.Process(transport, protocol, loop)
    pgid = proc.pid  # start_new_session: the child leads its own process group
    out, err = _Capture(OUTPUT_LIMIT), _Capture(OUTPUT_LIMIT)
    assert proc.stdout is not None and proc.stderr is not None
    tasks = [asyncio.ensure_future(out.drain(proc.stdout)), asyncio.ensure_future(err.drain(proc.stderr))]
    if payload.stdin is not None:
        assert proc.stdin is not None
        tasks.append(asyncio.ensure_future(_feed(proc.stdin, stdin_data)))
    try:
        await asyncio.shield(protocol.exited)  # a cancellation must not cancel the exit notification itself
        exit_code = transport.get_returncode()
        assert exit_code is not None
        _kill_group(pgid)  # nothing of the step outlives it
        _done, pending = await asyncio.wait(tasks, timeout=_DRAIN_AFTER_EXIT_S)
        for task in pending:  # a process that escaped the group still holds a pipe
            task.cancel()
    except BaseException:
        # Cancelled (hard timeout / plan stop) or failed: kill the whole group, reap, then re-raise.
        _kill_group(pgid)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(protocol.exited)
        raise
    finally:
        transport.close()

    result: dict[str, Any] = {"exit_code": exit_code, "stdout": out.text(), "stderr": err.text()}
    if out.truncated:
        result["stdout_truncated"] = True
    if err.truncated:
        result["stderr_truncated"] = True
    if exit_code != 0 and not payload.allow_nonzero:
        what = f"command exited with {exit_code}" if exit_code > 0 else \
            f"command was killed by {_signal_name(-exit_code)}"
        raise ActionFailure(
            what, details={
                "exit_code": exit_code, "stderr_tail": result["stderr"][-_TAIL:],
                "stdout_tail": result["stdout"][-_TAIL:],
            })
    return result
