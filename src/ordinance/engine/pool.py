"""A warm pool of killable worker processes for synchronous actions (CONTRACT §5.3).

Synchronous Python cannot be stopped inside the engine's process, so it never runs there: each call
goes to a pre-started worker process, and a worker that passes its deadline is killed with SIGKILL,
reaped, and replaced in the background. A result that would have arrived later cannot be delivered
— the connection dies with the process.

    pool = WorkerPool(size=2)
    await pool.start()
    try:
        out = await pool.run(spec.func, payload, ctx, timeout_s=2.5)
    except TimeoutError:        # hard-stopped (STEP_TIMEOUT / PLAN_TIMEOUT)
        ...
    except ActionFailure as f:  # the function raised (WorkerCrashed too: it is an ActionFailure)
        ...
    await pool.close()

How it works: workers are forked (``multiprocessing`` "fork" context), so functions are sent by
reference (module-level functions, including ones in ``__main__`` defined before the pool started).
Each worker owns one end of a Unix socket pair and loops: receive a pickled
``(func, payload, ctx)`` frame, call, send back a pickled reply frame. The parent waits on its end
with ``loop.add_reader`` — the event loop is never blocked — under ``asyncio.timeout_at`` of the
caller's absolute deadline, which also covers the time spent waiting for a free worker.

Failures map as follows: an exception raised by the function comes back as :class:`ActionFailure`
(message, ``recoverable`` and ``details`` preserved for an ActionFailure; ``"TypeName: message"`` and
recoverable for anything else); a result that cannot be pickled is a non-recoverable ActionFailure;
a worker that dies during a call (``os._exit``, a segfault, the OOM killer) raises
:class:`WorkerCrashed` (an ActionFailure naming the exit code or signal) and is replaced.

Workers ignore SIGINT (the parent owns shutdown) and, on Linux, die with their parent
(``PR_SET_PDEATHSIG``), so an engine that is killed outright leaves no workers behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..actions.registry import ActionFailure, PolicyRefusal

__all__ = ["PoolClosed", "WorkerCrashed", "WorkerPool"]

_HEADER = struct.Struct(">Q")
_RECV_CHUNK = 256 * 1024
_REAP_GRACE_S = 5.0  # how long a crashed worker may take to finish exiting before it is killed
_PR_SET_PDEATHSIG = 1

try:  # resolved in the parent so forked workers need no import work
    import ctypes

    _LIBC: Any = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except (ImportError, OSError):  # pragma: no cover - no ctypes / no libc
    _LIBC = None


class WorkerCrashed(ActionFailure):
    """A worker process died while running a call (exit code or signal in the message and ``details``)."""


class PoolClosed(RuntimeError):
    """The pool was closed (before or during the call)."""


# --------------------------------------------------------------------------- worker side

def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return bytes(buf)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call(func: Callable[..., Any], payload: Any, ctx: Any) -> tuple[Any, ...]:
    try:
        result = func(payload, ctx)
        if inspect.isawaitable(result):
            async def _await() -> Any:
                return await result

            result = asyncio.run(_await())
        return ("ok", result)
    except PolicyRefusal as exc:
        return ("err", "PolicyRefusal", exc.message, False, {**exc.details, "_path": exc.path, "_check": exc.check})
    except ActionFailure as exc:
        return ("err", type(exc).__name__, exc.message, exc.recoverable, exc.details)
    except BaseException as exc:  # noqa: BLE001 - everything the function raises is a step failure
        return ("err", type(exc).__name__, _describe(exc), True, {"exception_type": type(exc).__name__})


def _dump_reply(reply: tuple[Any, ...]) -> bytes:
    try:
        return pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        if reply[0] == "ok":
            msg = f"the action's result cannot be sent back from the worker (not picklable): {_describe(exc)}"
            return pickle.dumps(("err", "PicklingError", msg, False, {}), pickle.HIGHEST_PROTOCOL)
        # an exception whose details are not picklable: keep the message, describe the details
        details = {"details_repr": repr(reply[4])[:2000]}
        return pickle.dumps(("err", reply[1], reply[2], reply[3], details), pickle.HIGHEST_PROTOCOL)


def _worker_main(sock: socket.socket, inherited: list[socket.socket], parent_pid: int) -> None:
    """Body of a worker process: serve calls until the parent's end of the socket closes."""
    for other in inherited:  # the parent's ends of sibling workers: keep none of them alive here
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)  # the parent's event loop owns that descriptor
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(0)
    sock.setblocking(True)
    while True:
        try:
            header = _recv_exact(sock, _HEADER.size)
            if header is None:
                return
            body = _recv_exact(sock, _HEADER.unpack(header)[0])
            if body is None:
                return
        except OSError:
            return
        try:
            func, payload, ctx = pickle.loads(body)
        except BaseException as exc:  # noqa: BLE001
            reply: tuple[Any, ...] = ("err", "UnpicklingError",
                                      f"the call cannot be loaded in the worker: {_describe(exc)}", False, {})
        else:
            reply = _call(func, payload, ctx)
            del func, payload, ctx
        data = _dump_reply(reply)
        del reply
        try:
            sock.sendall(_HEADER.pack(len(data)) + data)
        except OSError:
            return


# --------------------------------------------------------------------------- parent side

class _Eof(Exception):
    """The worker's end of the socket closed mid-call."""


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing.Process (fork context)
    sock: socket.socket
    pid: int
    pending: asyncio.Future[bytes] | None = None
    busy: bool = False  # a call frame has been (or is being) sent
    reading: bool = False
    dead: bool = False
    exitcode: int | None = None  # set once reaped
    reaper: asyncio.Task[None] | None = None
    buf: bytearray = field(default_factory=bytearray)


def _exit_text(code: int | None) -> tuple[str, dict[str, Any]]:
    if code is None:
        return "did not exit", {"exit_code": None}
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}", {"exit_code": code, "signal": name}
    return f"exited with code {code}", {"exit_code": code}


class WorkerPool:
    """``size`` pre-started worker processes; :meth:`run` is a call with a hard, killing deadline.

    Not thread-safe: use it from one event loop.
    """

    def __init__(self, size: int = 2) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self._mp = multiprocessing.get_context("fork")
        self._all: set[_Worker] = set()
        self._idle: deque[_Worker] = deque()
        self._waiters: deque[asyncio.Future[_Worker]] = deque()
        self._background: set[asyncio.Task[Any]] = set()
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the workers (idempotent). :meth:`run` starts the pool itself if needed."""
        if self._closed:
            raise PoolClosed("worker pool is closed")
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        self._fill()

    async def close(self) -> None:
        """Kill and reap every worker; calls in progress or waiting fail with :class:`PoolClosed`."""
        if self._closed:
            return
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("worker pool closed"))
        workers = list(self._all)
        for w in workers:
            self._kill(w, PoolClosed("worker pool closed while the call was running"))
        self._idle.clear()
        await asyncio.gather(*(self._reaper(w) for w in workers), return_exceptions=True)
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for diagnostics and tests)."""
        return sorted(w.pid for w in self._all if not w.dead)

    # ------------------------------------------------------------------ the call

    async def run(self, func: Callable[..., Any], payload: Any, ctx: Any, timeout_s: float) -> Any:
        """Run ``func(payload, ctx)`` in a worker; kill it if it is not done within ``timeout_s``.

        The deadline is absolute from this call: waiting for a free worker counts against it.
        Raises ``TimeoutError`` (the same class as ``asyncio.TimeoutError``), :class:`ActionFailure`,
        :class:`WorkerCrashed` or :class:`PoolClosed`; cancellation kills the worker too.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._closed:
            raise PoolClosed("worker pool is closed")
        if not self._started:
            await self.start()
        if hasattr(ctx, "for_worker"):
            ctx = ctx.for_worker()
        try:
            body = pickle.dumps((func, payload, ctx), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001
            raise ActionFailure(
                f"the call cannot be sent to a worker process (functions must be module-level, payloads "
                f"picklable): {_describe(exc)}", recoverable=False) from None
        frame = _HEADER.pack(len(body)) + body
        if timeout_s <= 0:
            raise TimeoutError("timeout before the call could start")

        worker: _Worker | None = None
        try:
            async with asyncio.timeout_at(deadline):
                worker = await self._acquire()
                reply = await self._exchange(worker, frame)
        except _Eof:
            assert worker is not None
            raise await self._crashed(worker) from None
        except BaseException:
            if worker is not None and not worker.busy:
                self._release(worker)  # stopped before anything was sent: the worker is still clean
            elif worker is not None:  # timed out or cancelled mid-call: the worker dies with it
                self._kill(worker)
                reaper = self._reaper(worker)
                reaper.add_done_callback(lambda _t: self._spawn_later())  # replace once the old one is gone
                with contextlib.suppress(BaseException):
                    await asyncio.shield(reaper)
            raise
        worker.busy = False
        self._release(worker)
        return self._decode(reply)

    @staticmethod
    def _decode(reply: bytes) -> Any:
        try:
            msg = pickle.loads(reply)
        except Exception as exc:  # noqa: BLE001
            raise ActionFailure(f"the worker's reply cannot be loaded: {_describe(exc)}", recoverable=False) from None
        if msg[0] == "ok":
            return msg[1]
        _, type_name, message, recoverable, details = msg
        if type_name == "PolicyRefusal":  # keeps its meaning across the process boundary (POLICY_DENIED)
            path, check = details.pop("_path", None), details.pop("_check", "envelope")
            raise PolicyRefusal(message, check=check, path=path, details=details)
        raise ActionFailure(message, recoverable=recoverable, details=details)

    async def _exchange(self, w: _Worker, frame: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        w.pending = fut
        w.busy = True
        w.buf = bytearray()
        try:
            await loop.sock_sendall(w.sock, frame)
        except OSError:
            raise _Eof() from None
        loop.add_reader(w.sock.fileno(), self._on_readable, w)
        w.reading = True
        try:
            return await fut
        finally:
            w.pending = None
            if w.reading:
                w.reading = False
                loop.remove_reader(w.sock.fileno())

    @staticmethod
    def _on_readable(w: _Worker) -> None:
        fut = w.pending
        if fut is None or fut.done():
            return
        try:
            data = w.sock.recv(_RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            fut.set_exception(_Eof())
            return
        w.buf += data
        if len(w.buf) >= _HEADER.size:
            size = _HEADER.unpack_from(w.buf)[0]
            if len(w.buf) >= _HEADER.size + size:
                fut.set_result(bytes(w.buf[_HEADER.size:_HEADER.size + size]))
                w.buf = bytearray()

    # ------------------------------------------------------------------ workers

    def _spawn(self) -> _Worker:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        inherited = [w.sock for w in self._all]
        try:
            proc = self._mp.Process(
                target=_worker_main, args=(child_end, inherited, os.getpid()),
                name="ordinance-worker", daemon=True,
            )
            proc.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        parent_end.setblocking(False)
        assert proc.pid is not None
        w = _Worker(process=proc, sock=parent_end, pid=proc.pid)
        self._all.add(w)
        return w

    def _fill(self) -> None:
        """Start workers until there are ``size`` of them."""
        while not self._closed and len(self._all) < self.size:
            self._release(self._spawn())

    def _spawn_later(self) -> None:
        """Start a replacement worker once the current callbacks are done."""
        if self._closed or self._loop is None:
            return

        def fill() -> None:
            try:
                self._fill()
            except OSError:
                pass  # fork failed (resources): the next _acquire tries again and reports it

        self._loop.call_soon(fill)

    def _release(self, w: _Worker) -> None:
        if self._closed or w.dead:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(w)
                return
        self._idle.append(w)

    async def _acquire(self) -> _Worker:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise PoolClosed("worker pool is closed")
            if self._idle and not self._waiters:
                w = self._idle.popleft()
            else:
                if not self._idle and len(self._all) < self.size:
                    self._fill()  # a replacement that could not be started earlier
                    continue
                waiter: asyncio.Future[_Worker] = loop.create_future()
                self._waiters.append(waiter)
                try:
                    w = await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                        self._release(waiter.result())  # handed over just as we gave up: pass it on
                    else:
                        with contextlib.suppress(ValueError):
                            self._waiters.remove(waiter)
                    raise
            if w.process.exitcode is None:
                return w
            # died while idle (killed from outside): replace it and look again
            self._kill(w)
            self._fill()

    def _kill(self, w: _Worker, exc: BaseException | None = None) -> None:
        """SIGKILL ``w`` and forget it (idempotent). A pending call fails with ``exc`` if given."""
        if w.dead:
            return
        w.dead = True
        self._all.discard(w)
        with contextlib.suppress(ValueError):
            self._idle.remove(w)
        if w.reading and self._loop is not None:
            w.reading = False
            self._loop.remove_reader(w.sock.fileno())
        if w.pending is not None and not w.pending.done():
            w.pending.set_exception(exc or PoolClosed("worker killed"))
        with contextlib.suppress(ProcessLookupError, OSError):
            os.kill(w.pid, signal.SIGKILL)
        w.sock.close()

    def _reaper(self, w: _Worker, grace_s: float = 1.0) -> asyncio.Task[None]:
        """The one task reaping ``w``: survives its callers' cancellation; :meth:`close` waits for it."""
        if w.reaper is None:
            task = asyncio.ensure_future(self._reap(w, grace_s))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            w.reaper = task
        return w.reaper

    async def _reap(self, w: _Worker, grace_s: float = 1.0) -> None:
        """Wait until ``w``'s process is gone and collect its exit status (no zombie).

        Waits on the process sentinel first; if that does not fire within ``grace_s`` (the worker is
        still exiting on its own, or a grandchild holds the sentinel) the process is SIGKILLed and
        polled until the kernel reports it gone.
        """
        loop = asyncio.get_running_loop()
        proc = w.process
        if proc.exitcode is None:
            gone: asyncio.Future[None] = loop.create_future()

            def on_exit() -> None:
                if not gone.done():
                    gone.set_result(None)

            sentinel = proc.sentinel
            loop.add_reader(sentinel, on_exit)
            try:
                await asyncio.wait_for(gone, grace_s)
            except TimeoutError:
                pass
            finally:
                loop.remove_reader(sentinel)
            delay = 0.001
            while proc.exitcode is None:  # exitcode polls waitpid(WNOHANG), reaping when it can
                with contextlib.suppress(ProcessLookupError, OSError):
                    os.kill(w.pid, signal.SIGKILL)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        proc.join()  # already exited: returns at once, reaps if not yet done
        w.exitcode = proc.exitcode
        proc.close()

    async def _crashed(self, w: _Worker) -> WorkerCrashed:
        """The worker's connection broke mid-call: reap it, replace it, describe how it died."""
        self._kill_soft(w)
        reaper = self._reaper(w, grace_s=_REAP_GRACE_S)
        reaper.add_done_callback(lambda _t: self._spawn_later())
        with contextlib.suppress(BaseException):
            await asyncio.shield(reaper)
        how, details = _exit_text(w.exitcode)
        return WorkerCrashed(f"worker process {w.pid} {how} during the call", recoverable=True, details=details)

    def _kill_soft(self, w: _Worker) -> None:
        """Forget a worker that is exiting on its own (its exit status is still wanted)."""
        w.dead = True
        self._all.discard(w)
        w.sock.close()
