"""The public engine: ``Engine(store=…).run(plan, context) -> PlanResult`` (CONTRACT §5, §12)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from ..actions.registry import ActionRegistry, check_payload, default_registry, payload_errors
from ..contract.canonical import digest, digest_bytes, run_id as make_run_id
from ..contract.errors import ErrorCode
from ..contract.models import UUID4_PATTERN, ExecutionContext, ExecutionError, Plan, PlanResult, PlanStatus
from ..governance.envelope import Envelope
from ..store.base import ExecutionRow, PlanImmutableError, Store, StoreError, WriteBatch
from .clock import now_ms
from .events import EventBus
from .execution import Execution, RunSettings
from .journal import ChainWriter
from .outcome import run_rule_set
from .rejection import Rejection

__all__ = ["Engine", "MAX_NESTING_DEPTH", "DEFAULT_LEASE_MS"]

log = logging.getLogger("ordinance.engine")

MAX_NESTING_DEPTH = 8
DEFAULT_LEASE_MS = 30_000

import re

_UUID4 = re.compile(UUID4_PATTERN)


def _lease_ms_from_env() -> int:
    raw = os.environ.get("ORDINANCE_LEASE_MS")
    if not raw:
        return DEFAULT_LEASE_MS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"ORDINANCE_LEASE_MS must be a whole number of milliseconds, got {raw!r}") from None
    if value < 100:
        raise ValueError(f"ORDINANCE_LEASE_MS must be at least 100, got {value}")
    return value


class Engine:
    """Runs plans against a store.

    ``store`` is a :class:`~ordinance.store.Store` or a URL (default: ``$ORDINANCE_STORE`` or
    ``.ordinance/ordinance.db``). ``workspace`` is the directory actions may touch; an
    ``envelope`` (§6.2) narrows what plans may do; ``authorization=True`` requires a principal
    with a valid token for every run (§6.1).
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        registry: ActionRegistry | None = None,
        workspace: str | os.PathLike[str] | None = None,
        envelope: Envelope | None = None,
        authorization: bool = False,
        sinks: Iterable[Any] = (),
        outbox: bool = False,
        pool_size: int = 2,
        lease_ms: int | None = None,
        origin: str | None = None,
        owner: str | None = None,
        recover_on_start: bool = True,
        error_handler: Callable[[PlanResult], Any] | None = None,
        preconditions: Callable[..., Any] | None = None,
    ) -> None:
        if store is None or isinstance(store, str):
            from ..store import open_store

            store = open_store(store)
        self.store: Store = store
        if registry is None:
            import ordinance.actions  # noqa: F401 - registers the built-ins

            registry = default_registry
        self.registry = registry
        _ensure_execute_plan(self.registry)
        env = envelope or Envelope(workspace=os.fspath(workspace) if workspace is not None else ".")
        if workspace is not None and envelope is not None:
            env = replace(env, workspace=os.fspath(workspace))
        self.envelope = env.resolved()
        self.authorization = authorization
        self.bus = EventBus(list(sinks))
        self.outbox = outbox
        self.pool_size = pool_size
        self.lease_ms = lease_ms if lease_ms is not None else _lease_ms_from_env()
        self.origin = origin or "urn:ordinance:" + socket.gethostname()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.recover_on_start = recover_on_start
        self.error_handler = error_handler
        self.preconditions = preconditions
        self._recovered = False
        self._active: dict[str, Execution] = {}
        self._pool: Any = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._lease_task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def run(self, plan: Any, context: Any = None, **kwargs: Any) -> PlanResult:
        """Run a plan to its terminal result (blocking). See :meth:`run_async` for the arguments."""

        box: list[PlanResult] = []

        async def main() -> None:
            try:
                box.append(await self.run_async(plan, context, **kwargs))
            finally:
                await self.aclose()

        # The result is handed out through ``box``: asyncio.run's teardown may repr() the main task's result,
        # which for a 1000-step PlanResult costs tens of milliseconds.
        asyncio.run(main())
        return box[0]

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop background work of this event loop: the lease renewer, the worker pool, event delivery."""
        if self._lease_task is not None:
            self._lease_task.cancel()
            try:
                await self._lease_task
            except BaseException:  # noqa: BLE001
                pass
            self._lease_task = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        await self.bus.close()

    def close(self) -> None:
        self.store.close()

    async def _get_pool(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:
            from .pool import WorkerPool

            self._pool = WorkerPool(self.pool_size)
            self._pool_loop = loop
            await self._pool.start()
        return self._pool

    def _ensure_lease_renewer(self) -> None:
        if self._lease_task is None or self._lease_task.done():
            self._lease_task = asyncio.get_running_loop().create_task(self._renew_leases(), name="ordinance-leases")

    async def _renew_leases(self) -> None:
        interval = max(self.lease_ms / 3000.0, 0.03)
        while True:
            await asyncio.sleep(interval)
            expires = now_ms() + self.lease_ms
            for eid, execution in list(self._active.items()):
                try:
                    held = self.store.renew_lease(eid, self.owner, expires)
                except StoreError as exc:  # keep running: the lease may still be ours; fencing decides at commit
                    log.warning("lease renewal failed for %s: %s", eid, exc)
                    continue
                if not held:
                    log.warning("lease on %s was taken over; stopping it without writing more", eid)
                    execution.lose_lease()

    # -- recovery (§5.8) ---------------------------------------------------------------------------------------
    def recover(self) -> list[PlanResult]:
        """Close every execution whose lease expired (blocking)."""
        return asyncio.run(self._recover_and_close())

    async def _recover_and_close(self) -> list[PlanResult]:
        try:
            return await self.recover_async()
        finally:
            await self.aclose()

    async def recover_async(self) -> list[PlanResult]:
        from .recovery import recover_expired

        self._recovered = True
        return await recover_expired(self)

    # -- running -----------------------------------------------------------------------------------------------
    async def run_async(
        self,
        plan: Any,
        context: Any = None,
        *,
        environment: Mapping[str, Any] | None = None,
        principal: Mapping[str, str] | None = None,
        trigger_type: str = "manual",
        dialect: str = "v1",
        on_event: Callable[[dict[str, Any]], Any] | None = None,
        envelope: Mapping[str, Any] | None = None,
        _parent: tuple[str, str] | None = None,
        _depth: int = 0,
        _deadline_cap: int | None = None,
    ) -> PlanResult:
        """Admit and run one execution.

        ``plan``: a :class:`Plan`, a dict, or JSON bytes/str. ``context``: an ExecutionContext, dict or JSON; when
        omitted one is made (a new execution id, now, ``deadline = now + plan.timeout_ms``) from ``environment``,
        ``principal`` and ``trigger_type``. ``envelope`` (a mapping) may only narrow the engine's envelope.
        """
        if self.recover_on_start and not self._recovered:
            self._recovered = True
            try:
                await self.recover_async()
            except StoreError as exc:
                log.warning("recovery at start failed: %s", exc)
        self._ensure_lease_renewer()
        received = now_ms()

        # 1. Input hygiene and plan rules (§0.6, §1).
        plan_doc, plan_model, violations, p_digest = _read_plan(plan, dialect)
        # 2. The context (made here when not given).
        ctx_doc, ctx_raw_ok = _read_context(context, plan_doc, environment, principal, trigger_type, received)
        eid = ctx_doc.get("execution_id") if isinstance(ctx_doc, dict) else None
        if not (isinstance(eid, str) and _UUID4.match(eid)):
            eid = str(uuid.uuid4())
        rid = make_run_id(p_digest, eid)

        # R-EXEC-ID-ONCE: a known execution id runs nothing.
        existing = self.store.get_execution(eid)
        if existing is not None:
            return await self._known_execution(existing, p_digest, eid, rid, plan_doc)

        row = self._new_row(plan_doc, p_digest, eid, rid, ctx_doc, received, "running", _parent, _depth)
        writer = ChainWriter(eid)
        batch = WriteBatch()
        writer.append(batch, "execution.received", received, self._received_data(row, _parent))
        try:
            other = self.store.create_execution(row, batch)
        except StoreError as exc:
            return _unpersisted_failure(plan_doc, p_digest, eid, rid, received, ErrorCode.EXECUTION_ABORTED,
                                        f"the store refused the execution: {exc}", {"reason": "store_error"})
        if other is not None:  # lost a race with another submitter of the same id
            return await self._known_execution(other, p_digest, eid, rid, plan_doc)
        return await self._admit(plan_doc, plan_model, violations, p_digest, ctx_doc, ctx_raw_ok, row, writer,
                                 on_event=on_event, envelope=envelope, _depth=_depth, _deadline_cap=_deadline_cap)

    # -- queue (submit / worker) ---------------------------------------------------------------------------------
    def submit(
        self,
        plan: Any,
        context: Any = None,
        *,
        environment: Mapping[str, Any] | None = None,
        principal: Mapping[str, str] | None = None,
        trigger_type: str = "api",
        dialect: str = "v1",
    ) -> str:
        """Queue an execution for a worker (:meth:`run_claimed`); returns its execution id.

        Nothing is checked here beyond reading the documents: admission (§5.0) runs when a worker takes it, so a
        queued plan meets the policy in force when it runs. A known execution id with the same plan is returned
        as is; with another plan it is refused (ValueError), as R-EXEC-ID-ONCE requires.
        """
        received = now_ms()
        plan_doc, _model, _viol, p_digest = _read_plan(plan, dialect)
        ctx_doc, _ok = _read_context(context, plan_doc, environment, principal, trigger_type, received)
        eid = ctx_doc.get("execution_id") if isinstance(ctx_doc, dict) else None
        if not (isinstance(eid, str) and _UUID4.match(eid)):
            eid = str(uuid.uuid4())
            if isinstance(ctx_doc, dict):
                ctx_doc = {**ctx_doc, "execution_id": eid}
        rid = make_run_id(p_digest, eid)
        row = self._new_row(plan_doc, p_digest, eid, rid, ctx_doc, received, "queued", None, 0)
        row.lease_owner = row.lease_expires_at = None
        row.options["plan"] = plan_doc if plan_doc is not None else _as_text(plan)
        row.options["plan_is_text"] = plan_doc is None
        row.options["context_readable"] = _ok
        row.options["made_context"] = context is None
        writer = ChainWriter(eid)
        batch = WriteBatch()
        writer.append(batch, "execution.queued", received, self._received_data(row, None))
        other = self.store.create_execution(row, batch)
        if other is not None:
            if other.plan_digest != p_digest:
                raise ValueError(f"execution id {eid} was already used for another plan ({other.plan_digest})")
        return eid

    async def run_claimed(self, row: ExecutionRow, *, on_event: Callable[[dict[str, Any]], Any] | None = None) -> PlanResult:
        """Run a queued execution that this engine has claimed (``store.claim_queued(self.owner, …)``)."""
        if self.recover_on_start and not self._recovered:
            self._recovered = True
            await self.recover_async()
        self._ensure_lease_renewer()
        stored = self.store.get_result(row.execution_id)
        if stored is not None:
            return PlanResult.model_validate(stored)
        plan_in = row.options.get("plan")
        if row.options.get("plan_is_text") and isinstance(plan_in, str):
            plan_in = plan_in.encode("utf-8", "surrogatepass")
        plan_doc, plan_model, violations, p_digest = _read_plan(plan_in, "v1")
        tail = self.store.journal_tail(row.execution_id)
        writer = ChainWriter(row.execution_id, next_seq=tail[0] + 1, prev_hash=tail[1]) if tail else ChainWriter(row.execution_id)
        batch = WriteBatch()
        writer.append(batch, "execution.received", now_ms(), self._received_data(row, None))
        self.store.write(batch)
        ctx_doc = row.context if row.options.get("context_readable", True) else None
        if row.options.get("made_context") and isinstance(ctx_doc, dict):
            # A context that submit made: its clock starts when a worker takes the execution, not when it was queued.
            start = now_ms()
            span = ctx_doc.get("deadline_ms", start) - ctx_doc.get("started_at", start)
            ctx_doc = {**ctx_doc, "started_at": start, "deadline_ms": start + max(span, 1)}
        return await self._admit(plan_doc, plan_model, violations, p_digest, ctx_doc,
                                 row.options.get("context_readable", True), row, writer, on_event=on_event,
                                 envelope=None, _depth=0, _deadline_cap=None)

    def _new_row(self, plan_doc: Any, p_digest: str, eid: str, rid: str, ctx_doc: Any, now: int, status: str,
                 parent: tuple[str, str] | None, depth: int) -> ExecutionRow:
        plan_id = plan_doc.get("id") if isinstance(plan_doc, dict) and isinstance(plan_doc.get("id"), str) else ""
        version = plan_doc.get("version") if isinstance(plan_doc, dict) else None
        version = version if isinstance(version, int) and not isinstance(version, bool) else 0
        return ExecutionRow(
            execution_id=eid, plan_id=plan_id, plan_version=version, plan_digest=p_digest, run_id=rid, status=status,
            created_at=now, updated_at=now, context=ctx_doc if isinstance(ctx_doc, dict) else {},
            lease_owner=self.owner, lease_expires_at=now + self.lease_ms,
            parent_execution_id=parent[0] if parent else None, parent_step_id=parent[1] if parent else None,
            options={"workspace": self.envelope.workspace, "depth": depth},
        )

    def _received_data(self, row: ExecutionRow, parent: tuple[str, str] | None) -> dict[str, Any]:
        trig = row.context.get("trigger_type", "manual") if isinstance(row.context, dict) else "manual"
        return {
            "plan_id": row.plan_id, "plan_version": row.plan_version, "plan_digest": row.plan_digest,
            "run_id": row.run_id, "trigger_type": trig if isinstance(trig, str) else None,
            "parent": {"execution_id": parent[0], "step_id": parent[1]} if parent else None, "engine": self.owner,
        }

    async def _admit(self, plan_doc: Any, plan_model: Plan | None, violations: list[dict[str, Any]], p_digest: str,
                     ctx_doc: Any, ctx_raw_ok: bool, row: ExecutionRow, writer: ChainWriter, *,
                     on_event: Any, envelope: Any, _depth: int, _deadline_cap: int | None) -> PlanResult:
        """Admission in the §5.0 order for a stored execution, then the run. A store fault ends in a result."""
        try:
            return await self._admit_unguarded(
                plan_doc, plan_model, violations, p_digest, ctx_doc, ctx_raw_ok, row, writer, on_event=on_event,
                envelope=envelope, _depth=_depth, _deadline_cap=_deadline_cap)
        except StoreError as exc:
            # The execution row exists with our lease: once the store is healthy again, recovery closes it.
            return _unpersisted_failure(plan_doc, p_digest, row.execution_id, row.run_id, now_ms(),
                                        ErrorCode.EXECUTION_ABORTED, f"the store failed during admission: {exc}",
                                        {"reason": "store_error"})

    async def _admit_unguarded(self, plan_doc: Any, plan_model: Plan | None, violations: list[dict[str, Any]],
                               p_digest: str, ctx_doc: Any, ctx_raw_ok: bool, row: ExecutionRow, writer: ChainWriter, *,
                               on_event: Any, envelope: Any, _depth: int, _deadline_cap: int | None) -> PlanResult:
        eid, rid = row.execution_id, row.run_id
        started_at = ctx_doc.get("started_at") if isinstance(ctx_doc, dict) else None
        if not (isinstance(started_at, int) and not isinstance(started_at, bool) and started_at > 0):
            started_at = row.created_at
        env_in_force = self.envelope
        rejection = Rejection(self, plan_doc, plan_model, p_digest, rid, eid, started_at, writer, WriteBatch(), on_event)
        rejection.emit("plan_received", {"plan_digest": p_digest})

        def reject(code: ErrorCode, message: str, details: dict[str, Any]) -> Any:
            rejection.halting_error = ExecutionError.of(code, message, occurred_at=now_ms(), details=details)
            rejection.record("admission.rejected", {"error_code": code.value, "message": message,
                                                    "details": details})
            return run_rule_set(rejection, PlanStatus.FAILURE, error_handler=self.error_handler)

        # §5.0 order: hygiene + plan rules.
        if violations:
            rule = violations[0]["rule"]
            return await reject(ErrorCode.PLAN_INVALID,
                                f"the plan breaks {len(violations)} rule(s); first: {rule} at {violations[0]['path'] or '(root)'}: {violations[0]['message']}",
                                {"violations": violations})
        assert plan_model is not None
        try:
            self.store.register_plan(plan_model.id, plan_model.version, p_digest, plan_doc)
        except PlanImmutableError as exc:
            v = [{"path": "/version", "rule": "R-PLAN-IMMUTABLE", "message": str(exc)}]
            return await reject(ErrorCode.PLAN_INVALID, str(exc), {"violations": v})

        # Context rules (§2).
        ctx_model, ctx_code, ctx_violations = _parse_context(ctx_doc, ctx_raw_ok, plan_model)
        if ctx_model is None:
            assert ctx_code is not None
            details: dict[str, Any] = {"violations": ctx_violations}
            if ctx_code is ErrorCode.CONTEXT_MISSING:
                details["missing"] = sorted(v["path"].rsplit("/", 1)[-1] for v in ctx_violations if v["rule"] == "R-CTX-REQS")
                msg = "required environment keys are absent: " + ", ".join(details["missing"])
            else:
                msg = f"the context breaks {len(ctx_violations)} rule(s); first: {ctx_violations[0]['rule']} at {ctx_violations[0]['path']}: {ctx_violations[0]['message']}"
            return await reject(ctx_code, msg, details)

        # Every action exists (compensations too).
        missing = []
        for step in plan_model.steps:
            if step.action not in self.registry:
                missing.append({"step_id": step.id, "action": step.action, "path": f"steps/{step.id}/action"})
            if step.compensation is not None and step.compensation.action not in self.registry:
                missing.append({"step_id": step.id, "action": step.compensation.action, "path": f"steps/{step.id}/compensation"})
        if missing:
            names = ", ".join(sorted({m["action"] for m in missing}))
            return await reject(ErrorCode.ACTION_NOT_FOUND, f"unknown action(s): {names}", {"missing": missing})

        # Every static payload matches its action's input schema (bound payloads are checked after binding).
        bad = []
        admitted_payloads: dict[str, Any] = {}  # parsed here once: each step's first attempt takes its own
        for step in plan_model.steps:
            spec = self.registry.get(step.action)
            if not step.inputs:
                parsed, probs = check_payload(spec, step.payload)
                if probs:
                    bad.append({"step_id": step.id, "action": step.action, "problems": probs})
                else:
                    admitted_payloads[step.id] = parsed
            if step.compensation is not None:
                cspec = self.registry.get(step.compensation.action)
                probs = payload_errors(cspec, step.compensation.payload)
                if probs:
                    bad.append({"step_id": step.id, "action": step.compensation.action, "problems": probs, "compensation": True})
        if bad:
            first = bad[0]
            return await reject(ErrorCode.INVALID_PAYLOAD,
                                f"step {first['step_id']} ({first['action']}): {first['problems'][0]}", {"invalid": bad})

        # Authorization, envelope and budget (§6), every decision journaled (§6.3).
        try:
            if isinstance(envelope, Envelope):
                env_in_force = envelope  # a parent's envelope, handed to its child unchanged (§5.4)
            else:
                env_in_force = self.envelope.narrow(dict(envelope)) if envelope else self.envelope
        except ValueError as exc:
            return await reject(ErrorCode.POLICY_DENIED, f"the context's envelope is not a narrowing: {exc}",
                                {"reason": "envelope"})
        from .policy import check_policy

        decisions, principal_user, token_row = check_policy(self, plan_model, ctx_model, env_in_force, _depth)
        policy_digest = env_in_force.digest()
        # One record per distinct decision (check, subject, verdict, reason), naming every step it covers: a
        # 1000-step plan of one action journals one allow, not a thousand identical ones (§6.3 still holds).
        groups: dict[tuple[Any, ...], list[str | None]] = {}
        for d in decisions:
            groups.setdefault((d.check, d.action, d.path, d.verdict, d.reason), []).append(d.step_id)
        for (check, action, path, verdict, reason), step_ids in groups.items():
            ids = [x for x in step_ids if x is not None]
            rejection.record("policy.decision", {
                "check": check, "subject": {"action": action, "path": path}, "verdict": verdict,
                "reason": reason, "policy_digest": policy_digest, "step_ids": ids,
            }, step_id=ids[0] if len(ids) == 1 else None)
        denied = [d for d in decisions if not d.allowed]
        if denied:
            d = denied[0]
            return await reject(ErrorCode.POLICY_DENIED, f"{d.check} denied: {d.reason}", {
                "denials": [{"check": x.check, "step_id": x.step_id, "action": x.action, "path": x.path, "reason": x.reason}
                            for x in denied], "policy_digest": policy_digest})

        # Bundle preconditions (§9).
        if self.preconditions is not None:
            verdict = await _maybe_await(self.preconditions(plan_model, ctx_model, rejection))
            if verdict is not None:
                code, message, pdetails = verdict
                return await reject(code, message, pdetails)

        deadline = ctx_model.effective_deadline(plan_model)
        if env_in_force.timeout_seconds is not None:
            deadline = min(deadline, ctx_model.started_at + env_in_force.timeout_seconds * 1000)
        if _deadline_cap is not None:
            deadline = min(deadline, _deadline_cap)
        rejection.record("admission.accepted", {"effective_deadline_ms": deadline, "policy_digest": policy_digest,
                                                "steps": len(plan_model.steps), "workspace": env_in_force.workspace})
        settings = RunSettings(
            workspace=env_in_force.workspace, reject_symlinks=env_in_force.reject_symlinks,
            protected_paths=tuple(env_in_force.protected_paths), nesting_depth=_depth, principal_user=principal_user,
            envelope=env_in_force, authorization=self.authorization, principal=ctx_model.principal, on_event=on_event,
        )
        execution = Execution(
            self, plan_model, ctx_model, plan_digest=p_digest, run_id=rid, settings=settings, writer=writer,
            batch=rejection.batch, deadline_ms=deadline, admitted_payloads=admitted_payloads,
        )
        execution._event_seq = rejection._event_seq
        return await execution.run()

    async def _run_rule_set(self, execution: Any, status: PlanStatus) -> PlanResult:
        return await run_rule_set(execution, status, error_handler=self.error_handler)

    async def _known_execution(self, row: ExecutionRow, p_digest: str, eid: str, rid: str, plan_doc: Any) -> PlanResult:
        """§5.6 R-EXEC-ID-ONCE: same plan → the stored result (waiting for it if still running); else CONTEXT_INVALID."""
        if row.plan_digest != p_digest:
            return _unpersisted_failure(
                plan_doc, p_digest, eid, rid, now_ms(), ErrorCode.CONTEXT_INVALID,
                f"execution id {eid} was already used for another plan ({row.plan_digest}); a new run needs a new execution id",
                {"reason": "execution_id_reused", "violations": [
                    {"path": "/execution_id", "rule": "R-CTX-ID", "message": "execution id already used for another plan"}]},
            )
        while True:
            doc = self.store.get_result(eid)
            if doc is not None:
                return PlanResult.model_validate(doc)
            current = self.store.get_execution(eid)
            if current is None or current.status not in ("running", "queued"):
                doc = self.store.get_result(eid)
                if doc is not None:
                    return PlanResult.model_validate(doc)
            if current is not None and current.lease_expires_at is not None and current.lease_expires_at < now_ms():
                await self.recover_async()
            await asyncio.sleep(0.05)


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value):
        return await value
    return value


def _read_plan(plan: Any, dialect: str) -> tuple[Any, Plan | None, list[dict[str, Any]], str]:
    """(document or None, model or None, violations as dicts, plan digest)."""
    from ..contract import validate as v

    if isinstance(plan, Plan):
        doc = plan.to_document()
        return doc, plan, [], digest(doc)
    raw = plan
    if dialect == "legacy":
        from ..contract import legacy

        doc = raw
        if isinstance(raw, (bytes, bytearray, str)):
            try:
                doc = v_load(raw)
            except Exception as exc:  # noqa: BLE001
                viol = [{"path": "", "rule": "R-JSON", "message": str(exc)}]
                return None, None, viol, _raw_digest(raw)
        lv = legacy.validate_legacy(doc)
        if lv:
            return doc, None, [x.to_dict() for x in lv], _raw_digest(doc)
        raw = legacy.convert_legacy(doc)
    doc = raw
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            doc = v_load(raw)
        except Exception:  # noqa: BLE001 - reported by the validator as R-JSON
            doc = None
    try:
        model = v.parse_plan(doc if doc is not None else raw)
    except v.PlanInvalid as exc:
        return doc, None, [x.to_dict() for x in exc.violations], _raw_digest(doc if doc is not None else raw)
    pdoc = model.to_document()
    return pdoc, model, [], digest(pdoc)


def _as_text(raw: Any) -> str:
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "surrogateescape")
    return raw if isinstance(raw, str) else repr(raw)


def v_load(raw: Any) -> Any:
    from ..contract.jsonio import load_document

    return load_document(raw)


def _raw_digest(doc: Any) -> str:
    if isinstance(doc, (bytes, bytearray)):
        return digest_bytes(bytes(doc))
    if isinstance(doc, str):
        return digest_bytes(doc.encode("utf-8", "surrogatepass"))
    try:
        return digest(doc)
    except (TypeError, ValueError):
        return digest_bytes(repr(doc).encode("utf-8", "backslashreplace"))


def _read_context(
    context: Any, plan_doc: Any, environment: Mapping[str, Any] | None, principal: Mapping[str, str] | None,
    trigger_type: str, now: int,
) -> tuple[Any, bool]:
    """The context document (made when not given) and whether it was readable JSON."""
    if isinstance(context, ExecutionContext):
        return context.to_document(), True
    if context is None:
        timeout = 3_600_000
        if isinstance(plan_doc, dict):
            t = plan_doc.get("timeout_ms")
            if isinstance(t, int) and not isinstance(t, bool) and t > 0:
                timeout = t
        doc: dict[str, Any] = {
            "execution_id": str(uuid.uuid4()),
            "plan_id": plan_doc.get("id") if isinstance(plan_doc, dict) else None,
            "started_at": now,
            "deadline_ms": now + timeout,
            "environment": dict(environment or {}),
            "trigger_type": trigger_type,
        }
        if principal is not None:
            doc["principal"] = dict(principal)
        return doc, True
    if isinstance(context, (bytes, bytearray, str)):
        try:
            return v_load(context), True
        except Exception:  # noqa: BLE001
            return context, False
    return context, True


def _parse_context(ctx_doc: Any, readable: bool, plan: Plan) -> tuple[ExecutionContext | None, ErrorCode | None, list[dict]]:
    from ..contract import validate as v

    try:
        return v.parse_context(ctx_doc, plan), None, []
    except v.ContextInvalid as exc:
        return None, exc.code, [x.to_dict() for x in exc.violations]


def _unpersisted_failure(plan_doc: Any, p_digest: str, eid: str, rid: str, at: int, code: ErrorCode, message: str,
                         details: dict[str, Any]) -> PlanResult:
    plan_id = plan_doc.get("id") if isinstance(plan_doc, dict) and isinstance(plan_doc.get("id"), str) else ""
    version = plan_doc.get("version") if isinstance(plan_doc, dict) else 0
    version = version if isinstance(version, int) and not isinstance(version, bool) else 0
    return PlanResult(
        plan_id=plan_id, plan_version=version, execution_id=eid, status=PlanStatus.FAILURE, started_at=at,
        completed_at=at, duration_ms=0, steps_total=0, steps_executed=0, step_results=(), plan_digest=p_digest,
        run_id=rid, error=ExecutionError.of(code, message, occurred_at=at, details=details),
    )


def _ensure_execute_plan(registry: ActionRegistry) -> None:
    if "execute_plan" not in registry:
        from .nested import register_execute_plan

        register_execute_plan(registry)
