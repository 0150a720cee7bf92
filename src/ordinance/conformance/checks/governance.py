"""§6.1 principals and tokens, §6.2 the envelope, §6.3 journaled decisions."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

from ..harness import ENV, Harness, code_of, describe, sid, statuses
from ..registry import check, ensure, equal


def _now() -> int:
    return int(time.time() * 1000)


def _auth(h: Harness) -> Any:
    return h.engine(authorization=True)


def _decisions(h: Harness, eid: str) -> list[dict[str, Any]]:
    return [x for x in h.records(eid) if x["kind"] == "policy.decision"]


# --------------------------------------------------------------------------------------------------------- §6.1

@check("§6.1", "a token is 32 random URL-safe base64 bytes; the store keeps only its sha256 (never the secret)")
def _(h: Harness) -> str:
    from ...governance.tokens import issue_token

    tokens = [issue_token(h.store, user_id="alice", roles=["ops"], scopes=["control.*"], ttl_ms=60_000, now=_now())
              for _ in range(3)]
    ensure(len({t.token for t in tokens}) == 3, "issued tokens repeat")
    for t in tokens:
        raw = base64.urlsafe_b64decode(t.token + "=" * (-len(t.token) % 4))
        equal(len(raw), 32, "decoded token length (bytes)")
        ensure(all(c.isalnum() or c in "-_" for c in t.token), f"token {t.token!r} is not URL-safe base64")
        th = "sha256:" + hashlib.sha256(t.token.encode()).hexdigest()
        row = h.store.token_by_hash(th)
        ensure(row is not None, "the store has no row under sha256 of the token")
        equal((row.user_id, row.roles, row.scopes, row.revoked), ("alice", ["ops"], ["control.*"], False),
              "the stored token row")
    h.store.close()
    blob = b"".join(p.read_bytes() for p in h.db_path.parent.iterdir() if p.is_file())
    for t in tokens:
        ensure(t.token.encode() not in blob, "a token secret is stored in the database files")
    return "3 tokens; secrets absent from the store files"


@check("§6.1", "with authorization on: a valid token runs; unknown, expired, revoked or absent is POLICY_DENIED")
def _(h: Harness) -> str:
    from ...governance.tokens import issue_token

    eng = _auth(h)
    plan = h.plan({"action": "control.noop"})
    good = issue_token(h.store, user_id="alice", roles=[], scopes=["control.*"], ttl_ms=600_000, now=_now())
    expired = issue_token(h.store, user_id="alice", roles=[], scopes=["control.*"], ttl_ms=1, now=_now() - 60_000)
    revoked = issue_token(h.store, user_id="alice", roles=[], scopes=["control.*"], ttl_ms=600_000, now=_now())
    h.store.revoke_token(revoked.row.token_id)
    r = h.run(plan, engine=eng, environment=dict(ENV), principal={"user_id": "alice", "token": good.token})
    equal(r.status.value, "success", f"a valid token: {describe(r)}")
    cases = {
        "an unknown token": {"user_id": "alice", "token": "A" * 43},
        "an expired token": {"user_id": "alice", "token": expired.token},
        "a revoked token": {"user_id": "alice", "token": revoked.token},
        "another user's token": {"user_id": "mallory", "token": good.token},
        "no principal": None,
    }
    for what, principal in cases.items():
        r = h.run(plan, engine=eng, environment=dict(ENV), principal=principal)
        equal((code_of(r), r.steps_executed), ("POLICY_DENIED", 0), f"{what}: {describe(r)}")
    return f"{len(cases)} refusals"


@check("§6.1", "every step's action must match a scope, and the principal must have the action's roles")
def _(h: Harness) -> None:
    from ...governance.tokens import issue_token

    eng = _auth(h)
    tok = issue_token(h.store, user_id="bob", roles=["viewer"], scopes=["control.*", "conformance.*"], ttl_ms=600_000,
                      now=_now())
    admin = issue_token(h.store, user_id="carol", roles=["deployer"], scopes=["conformance.privileged", "control.noop"],
                        ttl_ms=600_000, now=_now())
    bob = {"user_id": "bob", "token": tok.token}
    carol = {"user_id": "carol", "token": admin.token}
    r = h.run(h.plan({"action": "control.noop"}, {"action": "fs.write", "payload": {"path": "x", "content": ""}}),
              engine=eng, environment=dict(ENV), principal=bob)
    equal((code_of(r), r.steps_executed), ("POLICY_DENIED", 0), f"an action outside the token's scopes: {describe(r)}")
    ensure(not h.file("x").exists(), "the out-of-scope step ran")
    r = h.run(h.plan({"action": "conformance.privileged"}), engine=eng, environment=dict(ENV), principal=bob)
    equal((code_of(r), r.steps_executed), ("POLICY_DENIED", 0), f"an action needing a role bob lacks: {describe(r)}")
    r = h.run(h.plan({"action": "conformance.privileged"}, {"action": "control.noop"}), engine=eng,
              environment=dict(ENV), principal=carol)
    equal(r.status.value, "success", f"the role and scopes present: {describe(r)}")
    r = h.run(h.plan({"action": "control.echo", "payload": {"value": 1}}), engine=eng, environment=dict(ENV),
              principal=carol)
    equal(code_of(r), "POLICY_DENIED", f"control.echo with only control.noop in scope: {describe(r)}")


# --------------------------------------------------------------------------------------------------------- §6.2

def _envelope(h: Harness, **fields: Any) -> Any:
    from ...governance.envelope import Envelope

    return Envelope(workspace=str(h.workspace), **fields)


@check("§6.2", "absolute paths, .. escapes, NUL bytes, denied and unlisted globs are POLICY_DENIED before any step")
def _(h: Harness) -> str:
    eng = h.engine(envelope=_envelope(h, allowed_paths=("out/*", "secret/*"), denied_paths=("secret/*",)))
    outside = h.root / "outside.txt"
    (h.workspace / "out").mkdir()
    bad = [str(outside), "../outside.txt", "out/../../outside.txt", "out/a\x00b", "secret/key.txt", "elsewhere.txt"]
    for path in bad:
        r = h.run(h.plan({"action": "control.noop"}, {"action": "fs.write", "payload": {"path": path, "content": "x"}}),
                  engine=eng)
        equal((code_of(r), r.steps_executed), ("POLICY_DENIED", 0), f"fs.write {path!r}: {describe(r)}")
    ensure(not outside.exists() and h.listdir() == ["out"] and h.listdir("out") == [], "a denied path was written")
    r = h.run(h.plan({"action": "fs.write", "payload": {"path": "out/ok.txt", "content": "x"}},
                     {"action": "fs.read", "payload": {"path": "out/ok.txt"}, "depends_on": [sid(1)]}), engine=eng)
    equal(r.status.value, "success", f"an allowed path: {describe(r)}")
    return f"{len(bad)} paths denied"


@check("§6.2", "protected paths (.git/, .ordinance/) cannot be changed by any step")
def _(h: Harness) -> None:
    (h.workspace / ".git").mkdir()
    (h.workspace / ".git" / "config").write_text("original")
    for step in ({"action": "fs.write", "payload": {"path": ".git/config", "content": "x"}},
                 {"action": "fs.delete", "payload": {"path": ".git/config"}},
                 {"action": "fs.write", "payload": {"path": ".ordinance/ordinance.db", "content": "x"}},
                 {"action": "fs.mkdir", "payload": {"path": ".git/hooks"}}):
        r = h.run(h.plan(step))
        equal(code_of(r), "POLICY_DENIED", f"{step['action']} {step['payload']['path']}: {describe(r)}")
    equal((h.workspace / ".git" / "config").read_text(), "original", ".git/config")
    ensure(not (h.workspace / ".ordinance").exists() and not (h.workspace / ".git" / "hooks").exists(),
           "a protected path was created")


@check("§6.2", "a symlink appearing after admission is refused at use, on the descriptors (nothing escapes)")
def _(h: Harness) -> None:
    outside = h.root / "outside"
    outside.mkdir()
    plan = h.plan({"action": "shell.run", "payload": {"argv": ["ln", "-s", str(outside), "link"]}},
                  {"action": "fs.write", "payload": {"path": "link/planted.txt", "content": "x"}, "depends_on": [sid(1)]})
    r = h.run(plan)
    equal(statuses(r)[0], "succeeded", f"creating the symlink: {describe(r)}")
    equal(r.status.value, "failure", f"writing through the symlink: {describe(r)}")
    equal(os.listdir(outside), [], "files created outside the workspace through the symlink")


@check("§6.2", "a path the envelope refuses at use is POLICY_DENIED (§4), like one refused at admission")
def _(h: Harness) -> str:
    outside = h.root / "outside"
    outside.mkdir()
    plan = h.plan({"action": "shell.run", "payload": {"argv": ["ln", "-s", str(outside), "link"]}},
                  {"action": "fs.write", "payload": {"path": "link/planted.txt", "content": "x"}, "depends_on": [sid(1)]})
    problems = []
    r = h.run(plan)
    if code_of(r) != "POLICY_DENIED":
        problems.append(f"a symlinked path refused at use ends {describe(r)}")
    bound = h.plan({"action": "control.echo", "payload": {"value": "../escape.txt"}},
                   {"action": "fs.write", "payload": {"content": "x"}, "depends_on": [sid(1)],
                    "inputs": {"/path": {"step": sid(1), "pointer": "/value"}}})
    r = h.run(bound)
    if code_of(r) != "POLICY_DENIED":
        problems.append(f"a '..' path supplied by a binding ends {describe(r)}")
    ensure(not (h.root / "escape.txt").exists() and os.listdir(outside) == [], "a refused path was written")
    ensure(not problems, "expected POLICY_DENIED: " + "; ".join(problems))
    return "symlink and bound escape refused with POLICY_DENIED"


@check("§6.2", "budget, allowed_actions, timeout_seconds; a context may only narrow the envelope")
def _(h: Harness) -> None:
    eng = h.engine(envelope=_envelope(h, max_budget_usd=1.0, allowed_actions=("control.*", "conformance.*", "fs.*"),
                                      timeout_seconds=2))
    one = h.run(h.plan({"action": "conformance.costly"}), engine=eng)
    equal(one.status.value, "success", f"one step costing $0.60 under a $1.00 budget: {describe(one)}")
    two = h.run(h.plan({"action": "conformance.costly"}, {"action": "conformance.costly"}), engine=eng)
    equal((code_of(two), two.steps_executed), ("POLICY_DENIED", 0), f"two steps costing $1.20: {describe(two)}")
    r = h.run(h.plan({"action": "shell.run", "payload": {"argv": ["true"]}}), engine=eng)
    equal(code_of(r), "POLICY_DENIED", f"an action outside allowed_actions: {describe(r)}")
    acc = [x for x in h.records(one.execution_id) if x["kind"] == "admission.accepted"][0]["data"]
    started = one.started_at
    ensure(acc["effective_deadline_ms"] <= started + 2_000,
           f"effective deadline {acc['effective_deadline_ms'] - started} ms after start; timeout_seconds is 2")
    wider = h.run(h.plan({"action": "control.noop"}), engine=eng, envelope={"workspace": str(h.root)})
    equal(code_of(wider), "POLICY_DENIED", f"a context moving the workspace: {describe(wider)}")
    narrower = h.run(h.plan({"action": "fs.write", "payload": {"path": "tmp.txt", "content": "x"}}), engine=eng,
                     envelope={"denied_paths": ["tmp.txt"]})
    equal(code_of(narrower), "POLICY_DENIED", f"a path the context's narrowing denies: {describe(narrower)}")
    more = h.run(h.plan({"action": "shell.run", "payload": {"argv": ["true"]}}), engine=eng,
                 envelope={"allowed_actions": ["*"]})
    equal(code_of(more), "POLICY_DENIED", f"a context trying to allow more actions: {describe(more)}")


# --------------------------------------------------------------------------------------------------------- §6.3

@check("§6.3", "every decision, allow and deny, is a policy.decision record: subject, verdict, reason")
def _(h: Harness) -> str:
    eng = h.engine(envelope=_envelope(h, denied_paths=("secret/*",)))
    ok = h.run(h.plan({"action": "control.noop"}, {"action": "fs.write", "payload": {"path": "a.txt", "content": "x"}}),
               engine=eng)
    equal(ok.status.value, "success", describe(ok))
    denied = h.run(h.plan({"action": "fs.write", "payload": {"path": "a.txt", "content": "x"}},
                          {"action": "fs.write", "payload": {"path": "secret/b.txt", "content": "x"}}), engine=eng)
    equal(code_of(denied), "POLICY_DENIED", describe(denied))
    n = 0
    for r, want in ((ok, {"allow"}), (denied, {"allow", "deny"})):
        recs = _decisions(h, r.execution_id)
        verdicts = {x["data"].get("verdict") for x in recs}
        equal(verdicts, want, f"verdicts journaled for a {r.status.value}")
        for x in recs:
            d = x["data"]
            ensure({"subject", "verdict", "reason", "policy_digest"} <= set(d), f"policy.decision data lacks fields: {d}")
            ensure(isinstance(d["subject"], dict) and "action" in d["subject"] and "path" in d["subject"],
                   f"subject is not {{action, path}}: {d['subject']}")
            ensure(isinstance(d["reason"], str) and d["reason"], "a decision without a reason")
        n += len(recs)
        actions = {x["data"]["subject"]["action"] for x in recs}
        steps = {s["action"] for s in _plan_steps(h, r)}
        ensure(steps <= actions, f"steps without a journaled decision: {sorted(steps - actions)}")
    deny = [x for x in _decisions(h, denied.execution_id) if x["data"]["verdict"] == "deny"]
    equal([x["data"]["subject"] for x in deny], [{"action": "fs.write", "path": "secret/b.txt"}], "the denied subject")
    return f"{n} decisions journaled"


def _plan_steps(h: Harness, r: Any) -> list[dict[str, Any]]:
    found = h.store.get_plan(r.plan_id, r.plan_version)
    return list(found[1]["steps"]) if found else []


@check("R-POLICY-AUDIT", "decisions carry the digest of the policy in force; authorization decisions are journaled")
def _(h: Harness) -> None:
    from ...governance.tokens import issue_token

    env = _envelope(h, denied_paths=("secret/*",))
    eng = h.engine(envelope=env, authorization=True)
    tok = issue_token(h.store, user_id="dana", roles=[], scopes=["control.*"], ttl_ms=600_000, now=_now())
    principal = {"user_id": "dana", "token": tok.token}
    r = h.run(h.plan({"action": "control.noop"}), engine=eng, environment=dict(ENV), principal=principal)
    equal(r.status.value, "success", describe(r))
    recs = _decisions(h, r.execution_id)
    digests = {x["data"]["policy_digest"] for x in recs}
    equal(digests, {eng.envelope.digest()}, "policy_digest of the decisions (the engine's envelope)")
    checks = {(x["data"].get("check"), x["data"]["verdict"]) for x in recs}
    ensure(("authorization", "allow") in checks, f"no journaled authorization allow: {checks}")
    r = h.run(h.plan({"action": "fs.write", "payload": {"path": "x", "content": ""}}), engine=eng,
              environment=dict(ENV), principal=principal)
    equal(code_of(r), "POLICY_DENIED", describe(r))
    checks = {(x["data"].get("check"), x["data"]["verdict"]) for x in _decisions(h, r.execution_id)}
    ensure(("authorization", "deny") in checks, f"no journaled authorization deny: {checks}")
    r = h.run(h.plan({"action": "control.noop"}), engine=eng, environment=dict(ENV), principal=principal,
              envelope={"denied_paths": ["more/*"]})
    narrowed = {x["data"]["policy_digest"] for x in _decisions(h, r.execution_id)}
    ensure(len(narrowed) == 1 and narrowed != {eng.envelope.digest()},
           "a run under a narrowed envelope records the engine's digest, not the policy in force")
