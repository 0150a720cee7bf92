"""Admission-time governance (CONTRACT §6): authorization, envelope, budget and nesting decisions.

Every decision, allow and deny alike, is returned so the engine journals it as
``policy.decision`` (§6.3). Paths that only a binding supplies are unknown here; they are
checked at use, on opened file descriptors (:mod:`ordinance.governance.paths`).
"""

from __future__ import annotations

from typing import Any

from ..contract.models import ExecutionContext, Plan
from ..governance.envelope import Decision, Envelope
from .clock import now_ms

__all__ = ["check_policy"]

MAX_NESTING_DEPTH = 8


def _check_relpath(path: Any) -> str | None:
    """None if ``path`` is a §0.5 path, else the reason it is not."""
    if not isinstance(path, str):
        return "path is not a string"
    try:
        from ..governance.paths import PathDenied, check_relpath
    except ImportError:  # pragma: no cover - paths module always ships
        return None
    try:
        check_relpath(path)
    except PathDenied as exc:
        return str(exc)
    return None


def check_policy(engine: Any, plan: Plan, ctx: ExecutionContext, env: Envelope, depth: int) -> tuple[list[Decision], str | None, Any]:
    decisions: list[Decision] = []
    principal_user = ctx.principal.user_id if ctx.principal else None
    token_row = None

    if depth > MAX_NESTING_DEPTH:
        decisions.append(Decision("nesting", "deny", f"nesting depth {depth} exceeds {MAX_NESTING_DEPTH} (§5.4)"))
        return decisions, principal_user, None

    legacy = (plan.metadata or {}).get("legacy") if isinstance(plan.metadata, dict) else None
    if isinstance(legacy, dict) and "token_hash" in legacy:
        row = engine.store.token_by_hash(str(legacy.get("token_hash")))
        now = now_ms()
        if row is None:
            decisions.append(Decision("authorization", "deny", "legacy token_hash is not in the token store"))
        elif row.user_id != legacy.get("user_id"):
            decisions.append(Decision("authorization", "deny", "legacy token belongs to another user"))
        elif row.revoked or row.expires_at <= now:
            decisions.append(Decision("authorization", "deny", "legacy token is revoked or expired"))
        else:
            decisions.append(Decision("authorization", "allow", f"legacy principal {row.user_id} authenticated"))
            principal_user = row.user_id
            token_row = row

    roles: set[str] = set()
    if engine.authorization:
        if ctx.principal is None and token_row is None:
            decisions.append(Decision("authorization", "deny", "authorization is on and the context has no principal"))
            return decisions, principal_user, None
        if token_row is None:
            from ..governance.tokens import authenticate

            token_row, reason = authenticate(engine.store, user_id=ctx.principal.user_id, token=ctx.principal.token,
                                             now=now_ms())
            if token_row is None:
                decisions.append(Decision("authorization", "deny", reason))
                return decisions, principal_user, None
        roles = set(token_row.roles)
        if env.allowed_roles is not None and not roles & set(env.allowed_roles):
            decisions.append(Decision("authorization", "deny",
                                      f"none of the principal's roles {sorted(roles)} is in allowed_roles"))
            return decisions, principal_user, token_row

    budget_used = 0.0
    for step in plan.steps:
        spec = engine.registry.get(step.action)
        actions = [(step.action, spec, step.payload, bool(step.inputs))]
        if step.compensation is not None:
            actions.append((step.compensation.action, engine.registry.get(step.compensation.action),
                            step.compensation.payload, False))
        for action, aspec, payload, bound in actions:
            if engine.authorization and token_row is not None:
                from ..governance.tokens import scope_allows

                if not scope_allows(token_row.scopes, action):
                    decisions.append(Decision("authorization", "deny", f"no scope of the token matches {action}",
                                              action=action, step_id=step.id))
                else:
                    missing = sorted(set(aspec.required_roles) - roles) if aspec else []
                    if missing:
                        decisions.append(Decision("authorization", "deny",
                                                  f"{action} requires role(s) {', '.join(missing)}", action=action,
                                                  step_id=step.id))
                    else:
                        decisions.append(Decision("authorization", "allow", "scope and roles match", action=action,
                                                  step_id=step.id))
            ok, reason = env.check_action(action)
            paths: list[str] = []
            if ok and aspec is not None and aspec.paths is not None:
                try:
                    paths = [p for p in aspec.paths(payload) if p is not None]
                except (KeyError, TypeError):
                    paths = []  # supplied by a binding: checked at use
            if not ok:
                decisions.append(Decision("envelope", "deny", reason, action=action, step_id=step.id))
                continue
            denied = False
            for path in paths:
                bad = _check_relpath(path)
                if bad is not None:
                    decisions.append(Decision("envelope", "deny", bad, action=action, path=str(path), step_id=step.id))
                    denied = True
                    continue
                pok, preason = env.check_path(path, write=not (aspec.read_only if aspec else False))
                decisions.append(Decision("envelope", "allow" if pok else "deny", preason, action=action, path=path,
                                          step_id=step.id))
                denied = denied or not pok
            if not paths and not denied:
                decisions.append(Decision("envelope", "allow", reason, action=action, step_id=step.id))
        if env.max_budget_usd is not None and spec is not None:
            attempts = step.effective_retry_policy.max_attempts if step.effective_retry_policy else 1
            cost = spec.cost_usd * attempts
            if budget_used + cost > env.max_budget_usd + 1e-12:
                decisions.append(Decision("budget", "deny",
                                          f"reserving ${cost:.4f} would pass max_budget_usd ${env.max_budget_usd:.4f} "
                                          f"(${budget_used:.4f} already reserved)", action=step.action, step_id=step.id))
            else:
                budget_used += cost
                decisions.append(Decision("budget", "allow", f"reserved ${cost:.4f}; ${budget_used:.4f} of "
                                          f"${env.max_budget_usd:.4f}", action=step.action, step_id=step.id))
    return decisions, principal_user, token_row
