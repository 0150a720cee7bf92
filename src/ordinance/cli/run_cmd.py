"""``ordinance run``, ``show``, ``list`` and ``recover`` (CONTRACT §12)."""

from __future__ import annotations

import json
import os
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
from .render import EXIT_CODES, STATUS_STYLE, print_result, print_summary

__all__ = ["register"]

class _Progress:
    """Live, step-by-step progress for a person (§12): status, attempt and elapsed time per step, and a bar."""

    def __init__(self, plan_doc: Any, stream_console) -> None:
        self.console = stream_console
        self.steps: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        if isinstance(plan_doc, dict) and isinstance(plan_doc.get("steps"), list):
            for s in plan_doc["steps"]:
                if isinstance(s, dict) and isinstance(s.get("id"), str):
                    self.order.append(s["id"])
                    self.steps[s["id"]] = {"name": s.get("name") or s["id"][:8], "action": s.get("action", "?"),
                                           "status": "pending", "attempt": 0, "t0": None, "t1": None}
        self.live = None
        self.t_start = time.monotonic()
        self.interactive = stream_console.is_terminal and len(self.order) <= 60

    def __enter__(self) -> "_Progress":
        if self.interactive:
            from rich.live import Live

            # get_renderable: the refresh thread redraws from current state, so elapsed times tick between events
            self.live = Live(console=self.console, refresh_per_second=10, transient=False, get_renderable=self._render)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(*exc)

    def on_event(self, event: dict[str, Any]) -> None:
        name = event["type"].split(".", 1)[1]
        data = event.get("data", {})
        sid = data.get("step_id")
        st = self.steps.get(sid) if sid else None
        now = time.monotonic()
        if st is not None:
            if name == "step_started":
                st["status"], st["attempt"] = "running", data.get("attempt", 1)
                st["t0"] = st["t0"] or now
            elif name == "step_succeeded":
                st["status"], st["t1"] = "succeeded", now
            elif name == "step_failed":
                st["status"], st["t1"], st["msg"] = "failed", now, data.get("message")
            elif name == "step_timed_out":
                st["status"], st["t1"], st["msg"] = "timed_out", now, data.get("message")
            elif name == "step_retry_scheduled":
                st["status"], st["msg"] = "retrying", f"retry in {data.get('delay_ms')} ms"
            elif name == "step_skipped":
                st["status"], st["t1"] = "skipped", now
            elif name == "step_compensated":
                st["status"] = "compensated" if data.get("verified") else st["status"]
        if self.live is not None:
            self.live.refresh()
        elif st is not None and name != "step_started" or (st is not None and data.get("attempt", 1) > 1):
            self._line(sid, st, name)
        elif st is not None and name == "step_started":
            self._line(sid, st, name)

    def _elapsed(self, st: dict[str, Any]) -> str:
        if st["t0"] is None:
            return ""
        end = st["t1"] or time.monotonic()
        return f"{(end - st['t0']) * 1000:.0f} ms"

    def _line(self, sid: str, st: dict[str, Any], name: str) -> None:
        icon, style = STATUS_STYLE.get(st["status"], ("?", ""))
        idx = self.order.index(sid) + 1
        extra = f"  {st.get('msg')}" if st["status"] in ("failed", "timed_out", "retrying") and st.get("msg") else ""
        self.console.print(
            f"[{style}]{icon}[/] [{idx}/{len(self.order)}] {st['name']} ({st['action']}) "
            f"{st['status']} attempt {st['attempt'] or '-'} {self._elapsed(st)}{extra}"
        )

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("", width=2)
        table.add_column("step")
        table.add_column("action", style="dim")
        table.add_column("status")
        table.add_column("attempt", justify="right")
        table.add_column("elapsed", justify="right")
        done = 0
        for sid in self.order:
            st = self.steps[sid]
            icon, style = STATUS_STYLE.get(st["status"], ("?", ""))
            if st["status"] not in ("pending", "running", "retrying"):
                done += 1
            table.add_row(f"[{style}]{icon}[/]", st["name"], st["action"], f"[{style}]{st['status']}[/]",
                          str(st["attempt"] or ""), self._elapsed(st))
        total = max(1, len(self.order))
        bar = ProgressBar(total=total, completed=done, width=40)
        footer = f"{done}/{len(self.order)} steps · {time.monotonic() - self.t_start:.1f}s"
        from rich.columns import Columns
        from rich.text import Text

        return Group(table, Columns([bar, Text(footer)]))


def _sign_after_run(store, *, quiet: bool) -> None:
    """Sign the journal's tree after a run; a signing problem is reported, never fatal to the run's outcome."""
    from ..ledger.keys import SigningKeyError
    from ..ledger.service import LedgerError, sign_current_tree
    from ..store import StoreError

    try:
        _, cp = sign_current_tree(store)
    except (LedgerError, SigningKeyError, StoreError) as exc:
        err_console.print(f"[yellow]warning:[/] no journal checkpoint was signed: {exc}")
        return
    if not quiet:
        err_console.print(f"[dim]journal checkpoint: {cp.tree_size} records signed by {cp.origin}[/]")


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        plan: Annotated[str, typer.Argument(help="Plan file (JSON), or - for standard input.")],
        context: Annotated[Optional[str], typer.Option("--context", help="ExecutionContext file (JSON). Without it a context is made: a new execution id, now, deadline = now + plan timeout.")] = None,
        env: Annotated[Optional[list[str]], typer.Option("--env", help="Environment entry KEY=VALUE for the made context (repeatable).")] = None,
        workspace: Annotated[Optional[str], typer.Option("--workspace", help="Directory the plan's actions may touch (default: current directory).")] = None,
        dialect: Annotated[str, typer.Option("--dialect", help="Plan dialect: v1 or legacy (§10).")] = "v1",
        envelope: Annotated[Optional[str], typer.Option("--envelope", help="Operator envelope file (JSON, §6.2).")] = None,
        authorization: Annotated[bool, typer.Option("--authorization/--no-authorization", help="Require a principal with a valid token (§6.1). Off by default for local runs.")] = False,
        user: Annotated[Optional[str], typer.Option("--user", help="Principal user id for the made context.")] = None,
        token: Annotated[Optional[str], typer.Option("--token", envvar="ORDINANCE_TOKEN", help="Principal token for the made context [env: ORDINANCE_TOKEN].")] = None,
        events: Annotated[Optional[str], typer.Option("--events", help="Also append every event (CloudEvents JSON) to this JSON Lines file.")] = None,
        checkpoint: Annotated[bool, typer.Option("--checkpoint/--no-checkpoint", help="Sign a journal checkpoint (the current Merkle tree, Ed25519) after the run (§8). On by default.")] = True,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Run a plan and print its result.

        Exit codes: 0 success, 3 partial, 1 failure, 2 usage or unreadable file.
        With --json the PlanResult alone is printed on stdout; otherwise a person sees live progress.
        """
        if dialect not in ("v1", "legacy"):
            usage_error(f"--dialect must be v1 or legacy, got {dialect!r}")
        if context and env:
            usage_error("give either --context or --env, not both")
        plan_bytes = read_input(plan, "plan")
        ctx_bytes = read_input(context, "context") if context else None
        environment = parse_env(env or [])
        if workspace is not None and not os.path.isdir(workspace):
            usage_error(f"workspace is not a directory: {workspace}")
        from ..engine import Engine, JsonlSink

        env_obj = load_envelope_or_exit(envelope)
        principal = {"user_id": user, "token": token} if (user and token) else None
        st = open_store_or_exit(store)
        try:
            engine = Engine(st, workspace=workspace or (None if env_obj else os.getcwd()), envelope=env_obj,
                            authorization=authorization, sinks=[JsonlSink(events)] if events else [])
        except ValueError as exc:
            usage_error(str(exc))
        plan_doc: Any = None
        try:
            plan_doc = json.loads(plan_bytes)
        except (ValueError, UnicodeDecodeError):
            pass
        out = err_console if json_out else console
        if json_out:
            result = engine.run(plan_bytes, ctx_bytes, environment=environment, principal=principal, dialect=dialect)
        else:
            progress = _Progress(plan_doc if dialect == "v1" else None, out)
            with progress:
                result = engine.run(plan_bytes, ctx_bytes, environment=environment, principal=principal,
                                    dialect=dialect, on_event=progress.on_event)
        if checkpoint:
            _sign_after_run(st, quiet=json_out)
        engine.close()
        if json_out:
            write_json(result.to_document())
        else:
            print_summary(result, console)
        raise typer.Exit(EXIT_CODES[result.status.value])

    @app.command("show")
    def show_cmd(
        execution_id: Annotated[str, typer.Argument(help="The execution id (UUID) to show.")],
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Show an execution: its PlanResult, or its state while it runs. Exit 1 if unknown."""
        st = open_store_or_exit(store, create=False)
        row = st.get_execution(execution_id)
        if row is None:
            err_console.print(f"[red]error:[/] no execution {execution_id} in {st.url}")
            raise typer.Exit(1)
        result = st.get_result(execution_id)
        if json_out:
            write_json(result if result is not None else {
                "execution_id": row.execution_id, "status": row.status, "plan_id": row.plan_id,
                "plan_version": row.plan_version, "plan_digest": row.plan_digest, "run_id": row.run_id,
                "lease_owner": row.lease_owner, "lease_expires_at": row.lease_expires_at, "result": None})
            raise typer.Exit(0)
        if result is None:
            console.print(f"execution {execution_id}: [cyan]{row.status}[/] (no result yet; lease {row.lease_owner})")
            raise typer.Exit(0)
        print_result(result, console)

    @app.command("list")
    def list_cmd(
        limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="How many executions (newest first).")] = 20,
        status: Annotated[Optional[str], typer.Option("--status", help="Only executions in this state: queued, running, success, partial, failure.")] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """List executions, newest first."""
        if status is not None and status not in ("queued", "running", "success", "partial", "failure"):
            usage_error(f"--status must be queued, running, success, partial or failure, got {status!r}")
        st = open_store_or_exit(store, create=False)
        rows = st.list_executions(limit=limit, status=status)
        if json_out:
            write_json([{"execution_id": r.execution_id, "status": r.status, "plan_id": r.plan_id,
                         "plan_version": r.plan_version, "created_at": r.created_at, "updated_at": r.updated_at,
                         "run_id": r.run_id} for r in rows])
            return
        if not rows:
            console.print("no executions yet")
            return
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for col in ("execution", "status", "plan", "created", "duration"):
            table.add_column(col)
        for r in rows:
            icon, style = {"success": ("✔", "green"), "partial": ("◐", "yellow"), "failure": ("✘", "red"),
                           "running": ("▶", "cyan"), "queued": ("…", "dim")}.get(r.status, ("?", ""))
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at / 1000))
            dur = f"{r.updated_at - r.created_at} ms" if r.status in ("success", "partial", "failure") else ""
            table.add_row(r.execution_id, f"[{style}]{icon} {r.status}[/]", f"{r.plan_id[:8]} v{r.plan_version}", created, dur)
        console.print(table)

    @app.command("recover")
    def recover_cmd(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
        """Close every execution whose lease expired (failure / EXECUTION_ABORTED / executor_lost).

        The lease length is ORDINANCE_LEASE_MS (default 30000). Recovery never resumes an execution.
        """
        from ..engine import Engine

        st = open_store_or_exit(store)
        try:
            engine = Engine(st, recover_on_start=False)
        except ValueError as exc:
            usage_error(str(exc))
        results = engine.recover()
        if json_out:
            write_json([r.to_document() for r in results])
            return
        if not results:
            console.print("nothing to recover: no execution has an expired lease")
            return
        for r in results:
            console.print(f"closed {r.execution_id}: [red]{r.status.value}[/] {r.error.error_code.value if r.error else ''}")
