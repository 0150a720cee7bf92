"""``ordinance submit``, ``worker`` and ``wait``: the execution queue (CONTRACT §5.8, §12; docs/workers.md).

* ``submit PLAN`` queues an execution and prints its id (exit 0; 1 if the execution id in ``--context`` was
  already used for another plan; 2 usage).
* ``worker`` claims queued executions and runs them until stopped (SIGTERM/SIGINT: graceful; a second signal ends
  the grace period at once). Exit 0 after a stop or an exit condition, 1 if the store cannot be used, 2 usage.
* ``wait ID`` blocks until the execution has a result and prints it like ``show``; it exits with the ``run`` codes
  (0 success, 3 partial, 1 failure), 124 when ``--timeout-s`` passes first (like ``timeout(1)``), 2 for an unknown
  execution id or a usage error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Annotated, Any, Optional

import typer

from .options import (
    JsonOpt,
    StoreOpt,
    console,
    err_console,
    load_envelope_or_exit,
    open_store_or_exit,
    parse_env,
    read_input,
    usage_error,
    write_json,
)
from .render import EXIT_CODES, print_result

__all__ = ["register", "WAIT_TIMEOUT_EXIT"]

#: ``ordinance wait`` exit status when --timeout-s passes before a result exists (as timeout(1) does).
WAIT_TIMEOUT_EXIT = 124


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                                           datefmt="%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger("ordinance")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def register(app: typer.Typer) -> None:
    @app.command("submit")
    def submit_cmd(
        plan: Annotated[str, typer.Argument(help="Plan file (JSON), or - for standard input.")],
        context: Annotated[Optional[str], typer.Option("--context", help="ExecutionContext file (JSON). Without it a context is made: a new execution id, now, deadline = now + plan timeout (the time spent queued counts).")] = None,
        env: Annotated[Optional[list[str]], typer.Option("--env", help="Environment entry KEY=VALUE for the made context (repeatable).")] = None,
        dialect: Annotated[str, typer.Option("--dialect", help="Plan dialect: v1 or legacy (§10).")] = "v1",
        user: Annotated[Optional[str], typer.Option("--user", help="Principal user id for the made context.")] = None,
        token: Annotated[Optional[str], typer.Option("--token", envvar="ORDINANCE_TOKEN", help="Principal token for the made context [env: ORDINANCE_TOKEN].")] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Queue a plan for a worker and print the execution id.

        Admission (§5.0) happens when a worker takes the execution, so a plan that breaks a rule is still queued and
        ends as a journaled failure. Exit 0 queued, 1 the context's execution id was used for another plan, 2 usage.
        """
        if dialect not in ("v1", "legacy"):
            usage_error(f"--dialect must be v1 or legacy, got {dialect!r}")
        if context and env:
            usage_error("give either --context or --env, not both")
        plan_bytes = read_input(plan, "plan")
        ctx_bytes = read_input(context, "context") if context else None
        environment = parse_env(env or [])
        principal = {"user_id": user, "token": token} if (user and token) else None
        from ..engine import Engine
        from ..store import StoreError

        st = open_store_or_exit(store)
        try:
            engine = Engine(st, recover_on_start=False)
        except ValueError as exc:
            usage_error(str(exc))
        try:
            eid = engine.submit(plan_bytes, ctx_bytes, environment=environment, principal=principal, dialect=dialect)
        except ValueError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1)
        except StoreError as exc:
            err_console.print(f"[bold red]error:[/] the store refused the execution: {exc}")
            raise typer.Exit(1)
        finally:
            st.close()
        if json_out:
            write_json({"execution_id": eid})
        else:
            sys.stdout.write(eid + "\n")
            sys.stdout.flush()

    @app.command("worker")
    def worker_cmd(
        concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=4096, help="Executions run at once by this worker.")] = 4,
        workspace: Annotated[Optional[str], typer.Option("--workspace", help="Directory the plans' actions may touch (default: current directory).")] = None,
        poll_ms: Annotated[int, typer.Option("--poll-ms", min=1, max=3_600_000, help="Pause between claims while the queue is empty.")] = 200,
        once: Annotated[bool, typer.Option("--once", help="Drain: exit as soon as the queue is empty and nothing is running.")] = False,
        max_executions: Annotated[Optional[int], typer.Option("--max-executions", min=1, help="Exit after claiming this many executions, once they have finished.")] = None,
        idle_exit_s: Annotated[Optional[float], typer.Option("--idle-exit-s", min=0, help="Exit after this many seconds with nothing running and nothing queued.")] = None,
        grace_s: Annotated[float, typer.Option("--grace-s", min=0, help="On SIGTERM/SIGINT, let running executions finish for this long; then they are cancelled (failure / EXECUTION_ABORTED / cancelled).")] = 30.0,
        envelope: Annotated[Optional[str], typer.Option("--envelope", help="Operator envelope file (JSON, §6.2) in force for every execution this worker runs.")] = None,
        authorization: Annotated[bool, typer.Option("--authorization/--no-authorization", help="Require a principal with a valid token (§6.1).")] = False,
        outbox_webhook: Annotated[Optional[list[str]], typer.Option("--outbox-webhook", help="Deliver the store's event outbox to this URL (repeatable), signed with --webhook-secret. Turns the outbox on for the executions this worker runs.")] = None,
        webhook_secret: Annotated[Optional[str], typer.Option("--webhook-secret", envvar="ORDINANCE_WEBHOOK_SECRET", help="HMAC-SHA256 key for X-Ordinance-Signature [env: ORDINANCE_WEBHOOK_SECRET].")] = None,
        outbox_jsonl: Annotated[Optional[str], typer.Option("--outbox-jsonl", help="Also deliver the outbox to this JSON Lines file. Turns the outbox on.")] = None,
        outbox_max_attempts: Annotated[int, typer.Option("--outbox-max-attempts", min=1, help="Failed tries after which an outbox event is dead (kept with its last error).")] = 20,
        outbox_backoff_ms: Annotated[int, typer.Option("--outbox-backoff-ms", min=1, help="First retry delay of a failed outbox event; doubles per failure, capped at 5 minutes.")] = 1000,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings only, not one line per execution.")] = False,
        store: StoreOpt = None,
    ) -> None:
        """Run queued executions (from `ordinance submit`) until stopped.

        Any number of workers on any number of machines may share one store (PostgreSQL for many machines; a SQLite
        file for processes on one machine). Each claimed execution holds a lease (ORDINANCE_LEASE_MS, default 30000)
        that this worker renews; every lease period it also closes executions whose worker was lost
        (failure / EXECUTION_ABORTED / executor_lost, never resumed). One line per claimed and finished execution is
        logged to stderr. SIGTERM or SIGINT stops claiming and waits --grace-s for running executions; a second signal
        cancels them at once. Exit 0 when stopped, 1 if the store cannot be used, 2 usage.
        """
        if workspace is not None and not os.path.isdir(workspace):
            usage_error(f"workspace is not a directory: {workspace}")
        if outbox_webhook and not webhook_secret:
            usage_error("--outbox-webhook needs --webhook-secret (or ORDINANCE_WEBHOOK_SECRET): events are signed")
        for url in outbox_webhook or []:
            if not url.startswith(("http://", "https://")):
                usage_error(f"--outbox-webhook must be an http:// or https:// URL, got {url!r}")
        from ..engine import Engine
        from ..engine.events import JsonlSink, WebhookSink
        from ..engine.outbox import OutboxDeliverer
        from ..engine.worker import Worker

        env_obj = load_envelope_or_exit(envelope)
        sinks: list[Any] = [WebhookSink(u, webhook_secret or "") for u in outbox_webhook or []]
        if outbox_jsonl:
            sinks.append(JsonlSink(outbox_jsonl))
        _setup_logging(logging.WARNING if quiet else logging.INFO)
        st = open_store_or_exit(store)
        try:
            engine = Engine(st, workspace=workspace or (None if env_obj else os.getcwd()), envelope=env_obj,
                            authorization=authorization, outbox=bool(sinks), recover_on_start=False)
        except ValueError as exc:
            usage_error(str(exc))
        deliverer = None
        if sinks:
            deliverer = OutboxDeliverer(st, sinks, base_delay_ms=outbox_backoff_ms,
                                        max_delay_ms=max(300_000, outbox_backoff_ms), max_attempts=outbox_max_attempts)
        worker = Worker(engine, concurrency=concurrency, poll_ms=poll_ms, grace_s=grace_s, drain=once,
                        max_executions=max_executions, idle_exit_s=idle_exit_s, deliverer=deliverer)

        async def main() -> int:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            def on_signal(signame: str) -> None:
                if not stop.is_set():
                    logging.getLogger("ordinance.worker").warning(
                        "%s: stopping (no new claims; waiting up to %g s for %d running)", signame, grace_s,
                        worker.running)
                    stop.set()
                else:
                    logging.getLogger("ordinance.worker").warning("%s again: cancelling running executions", signame)
                    worker.force_stop()

            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, on_signal, sig.name)
                except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
                    pass
            try:
                await worker.run(stop)
            finally:
                try:
                    await engine.aclose()
                finally:
                    if deliverer is not None:
                        await deliverer.aclose()
            return 0

        from ..store import StoreError

        try:
            rc = asyncio.run(main())
        except StoreError as exc:
            err_console.print(f"[bold red]error:[/] store failure: {exc}")
            rc = 1
        finally:
            st.close()
        raise typer.Exit(rc)

    @app.command("wait")
    def wait_cmd(
        execution_id: Annotated[str, typer.Argument(help="The execution id (from `ordinance submit`).")],
        timeout_s: Annotated[Optional[float], typer.Option("--timeout-s", min=0, help="Give up after this many seconds: exit 124.")] = None,
        poll_ms: Annotated[int, typer.Option("--poll-ms", min=1, max=60_000, help="How often to look for the result.")] = 200,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Wait until an execution has its result, then print it like `ordinance show`.

        Exit codes as `ordinance run`: 0 success, 3 partial, 1 failure; 124 if --timeout-s passes first;
        2 if no execution has that id (or usage). With --json the PlanResult alone is printed on stdout.
        """
        st = open_store_or_exit(store, create=False)
        try:
            row = st.get_execution(execution_id)
            if row is None:
                usage_error(f"no execution {execution_id} in {st.url}")
            start = time.monotonic()
            said = False
            while True:
                doc = st.get_result(execution_id)
                if doc is not None:
                    break
                if timeout_s is not None and time.monotonic() - start >= timeout_s:
                    row = st.get_execution(execution_id)
                    state = row.status if row is not None else "unknown"
                    lease = ""
                    if row is not None and row.lease_expires_at is not None:
                        left = row.lease_expires_at - int(time.time() * 1000)
                        lease = (f"; lease held by {row.lease_owner}, "
                                 + (f"expires in {left} ms" if left >= 0 else f"expired {-left} ms ago (no worker recovered it yet)"))
                    err_console.print(f"timed out after {timeout_s:g} s: execution {execution_id} is still {state}{lease}")
                    raise typer.Exit(WAIT_TIMEOUT_EXIT)
                if not said and not json_out:
                    err_console.print(f"[dim]waiting for {execution_id} ({row.status})…[/]")
                    said = True
                pause = poll_ms / 1000.0
                if timeout_s is not None:
                    pause = max(0.0, min(pause, timeout_s - (time.monotonic() - start)))
                time.sleep(pause)
        finally:
            st.close()
        status = doc.get("status")
        if json_out:
            write_json(doc)
        else:
            print_result(doc, console)
        raise typer.Exit(EXIT_CODES.get(status, 1))
