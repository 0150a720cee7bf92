"""§0: canonical JSON, digests, plan digest, run id, paths, input hygiene."""

from __future__ import annotations

import hashlib
import json

from ..harness import UUID4_RE, Harness, code_of, describe, sid
from ..registry import check, ensure, equal


def _definition(obj: object) -> bytes:
    """§0.1 verbatim."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")


_CORPUS: list[object] = [
    {},
    [],
    {"z": 1, "a": [True, None, 1.5, "é\n"]},
    {"é": 1, "z": 2, "Z": 3, "a": {"b": {"c": []}}, "\u2028": "\u2028", "ctl": "\x01\x1f\x7f"},
    {"floats": [0.0, -0.0, 1.0, 1e-7, 1e300, 2.5, 123456789.125], "ints": [0, -1, 2**53 - 1, 2**63 - 1, -(2**63)]},
    {"big": 2**70, "neg": -(2**64), "mixed": [1, 1.0, "1"]},
    {"emoji": "😀", "cjk": "漢字", "quote": "\"\\/", "tab": "\t", "nul": "\x00"},
    [{"k": i, "v": [i, str(i), {"n": None}]} for i in range(50)],
    "a bare string",
    12345,
]


@check("§0.1", "canonical bytes equal json.dumps(separators, sort_keys, ensure_ascii=False, allow_nan=False)")
def _(h: Harness) -> str:
    from ...contract.canonical import canonical_bytes, canonical_json

    for obj in _CORPUS:
        equal(canonical_bytes(obj), _definition(obj), f"canonical_bytes({str(obj)[:60]})")
        equal(canonical_json(obj).encode("utf-8"), _definition(obj), f"canonical_json({str(obj)[:60]})")
    return f"{len(_CORPUS)} documents, byte-identical to the definition"


@check("§0.1", "known answer: keys sorted by code point, UTF-8, no spaces")
def _(h: Harness) -> None:
    from ...contract.canonical import canonical_bytes

    equal(canonical_bytes({"z": 1, "a": [True, None, 1.5, "é\n"]}), b'{"a":[true,null,1.5,"\xc3\xa9\\n"],"z":1}',
          "canonical bytes")
    equal(canonical_bytes({"b": 1, "a": 2, "é": 3, "B": 4}), '{"B":4,"a":2,"b":1,"é":3}'.encode(), "key order")


@check("§0.1", "NaN and Infinity are not canonical JSON (allow_nan=False)")
def _(h: Harness) -> None:
    from ...contract.canonical import canonical_bytes, digest

    for bad in (float("nan"), float("inf"), {"x": [float("-inf")]}):
        for fn in (canonical_bytes, digest):
            try:
                fn(bad)
            except ValueError:
                continue
            raise AssertionError(f"{fn.__name__}({bad!r}) did not raise ValueError")


@check("§0.2", "known answers: sha256: + lowercase hex of the canonical bytes")
def _(h: Harness) -> None:
    from ...contract.canonical import digest

    equal(digest({}), "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "digest({})")
    equal(digest({"z": 1, "a": [True, None, 1.5, "é\n"]}),
          "sha256:f2f7fefb11d2abe985d7186f2c0a5ba96e5fbd1642df28d7e74115f3272f9cae", "digest of the §0.1 example")
    for obj in _CORPUS:
        d = digest(obj)
        equal(d, "sha256:" + hashlib.sha256(_definition(obj)).hexdigest(), f"digest({str(obj)[:60]})")
        ensure(d == d.lower() and len(d) == 71, f"digest {d} is not sha256: + 64 lowercase hex digits")


@check("§0.3", "the result's plan_digest is the digest of the plan; equal plans, equal digests")
def _(h: Harness) -> None:
    from ...contract.canonical import digest

    plan = h.plan({"action": "control.echo", "payload": {"value": {"b": 1, "a": 2}}})
    expected = digest(plan)
    r1 = h.run(plan)
    equal(r1.plan_digest, expected, "plan_digest of a run")
    # the same plan, keys in another order and with whitespace, as bytes: the same plan digest
    text = json.dumps(dict(reversed(list(plan.items()))), indent=3).encode()
    r2 = h.run(text)
    equal(r2.plan_digest, expected, "plan_digest of the same plan given as reordered, indented JSON bytes")
    registered = h.store.get_plan(plan["id"], 1)
    ensure(registered is not None, "the plan is not in the registry after a run")
    equal(registered[0], expected, "registry digest of the plan")
    changed = json.loads(json.dumps(plan))
    changed["version"] = 2
    equal(h.run(changed).plan_digest != expected, True, "a changed plan has a different digest")


@check("§0.4", "run_id = digest({plan: plan_digest, execution_id}); execution ids are UUID v4")
def _(h: Harness) -> None:
    from ...contract.canonical import digest

    plan = h.plan({"action": "control.noop"})
    a, b = h.run(plan), h.run(plan)
    for r in (a, b):
        ensure(UUID4_RE.match(r.execution_id), f"execution id {r.execution_id!r} is not a lowercase UUID v4")
        equal(r.run_id, digest({"plan": r.plan_digest, "execution_id": r.execution_id}), "run_id")
    ensure(a.execution_id != b.execution_id and a.run_id != b.run_id, "two runs share an execution id or run id")
    ctx = h.context(plan)
    c = h.run(plan, ctx)
    equal(c.execution_id, ctx["execution_id"], "the context's execution id is the execution's id")
    equal(c.run_id, digest({"plan": digest(plan), "execution_id": ctx["execution_id"]}), "run_id (given context)")


@check("§0.5", "paths: relative, forward slashes, no . / .. / empty segments (else POLICY_DENIED)")
def _(h: Harness) -> str:
    bad = ["../escape.txt", "/etc/escape.txt", "a//b.txt", "./a.txt", "a/./b.txt", "a/../b.txt", "a\\b.txt", "",
           "a/"]
    for path in bad:
        r = h.run(h.plan({"action": "fs.write", "payload": {"path": path, "content": "x"}}))
        equal(code_of(r), "POLICY_DENIED", f"fs.write to {path!r}: {describe(r)}")
        equal(r.steps_executed, 0, f"fs.write to {path!r}: steps_executed")
    ensure(h.listdir() == [], f"something was written to the workspace: {h.listdir()}")
    ensure(not (h.root / "escape.txt").exists(), "a path escaped the workspace")
    ok = h.run(h.plan({"action": "fs.mkdir", "payload": {"path": "dir/sub"}},
                      {"action": "fs.write", "payload": {"path": "dir/sub/file.txt", "content": "x"},
                       "depends_on": [sid(1)]}))
    equal(ok.status.value, "success", f"a well-formed nested path: {describe(ok)}")
    ensure(h.file("dir/sub/file.txt").read_text() == "x", "dir/sub/file.txt was not written under the workspace root")
    return f"{len(bad)} malformed paths refused"


_HYGIENE: list[tuple[str, bytes]] = [
    ("duplicate key", b'{"id": "a", "id": "b", "steps": []}'),
    ("NaN", b'{"id": NaN}'),
    ("Infinity", b'{"version": Infinity}'),
    ("-Infinity", b'{"version": -Infinity}'),
    ("lone surrogate", b'{"name": "\\ud800"}'),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}'),
    ("nesting deeper than 64", b'{"metadata": ' + b"[" * 64 + b"]" * 64 + b"}"),
    ("top level not an object", b'[{"id": "x"}]'),
    ("top level a string", b'"plan"'),
    ("more than 8 MiB", b'{"metadata": {"pad": "' + b"x" * (8 * 1024 * 1024) + b'"}}'),
]


@check("§0.6", "each hygiene failure is R-JSON at \"\" and nothing else")
def _(h: Harness) -> str:
    from ...contract.validate import validate_plan

    for what, doc in _HYGIENE:
        got = [(v.path, v.rule) for v in validate_plan(doc)]
        equal(got, [("", "R-JSON")], f"violations of a plan with {what}")
    # depth 64 is allowed: the same document one level shallower has no R-JSON
    ok = b'{"metadata": ' + b"[" * 63 + b"]" * 63 + b"}"
    ensure(all(v.rule != "R-JSON" for v in validate_plan(ok)), "nesting of exactly 64 levels was rejected as R-JSON")
    return f"{len(_HYGIENE)} kinds of malformed input"


@check("§0.6", "hygiene runs first: the engine rejects with PLAN_INVALID / CONTEXT_INVALID, no step runs")
def _(h: Harness) -> None:
    plan = h.plan({"action": "control.noop"})
    raw = json.dumps(plan).encode()
    dup = raw[:-1] + b', "name": "dup"}'
    r = h.run(dup)
    equal(code_of(r), "PLAN_INVALID", f"a plan with a duplicate key: {describe(r)}")
    equal([(v["path"], v["rule"]) for v in r.error.details.get("violations", [])], [("", "R-JSON")],
          "details.violations of a plan with a duplicate key")
    equal(r.steps_executed, 0, "steps_executed")
    ctx = json.dumps(h.context(plan)).encode()
    bad_ctx = ctx[:-1] + b', "started_at": 1}'
    r = h.run(plan, bad_ctx)
    equal(code_of(r), "CONTEXT_INVALID", f"a context with a duplicate key: {describe(r)}")
    nan_ctx = ctx[:-1] + b', "trigger_type": NaN}'
    r = h.run(plan, nan_ctx)
    equal(code_of(r), "CONTEXT_INVALID", f"a context with NaN: {describe(r)}")
    from ...contract.validate import ContextInvalid, parse_context

    try:
        parse_context(b'{"execution_id": "x", "execution_id": "y"}', plan)
    except ContextInvalid as exc:
        equal([(v.path, v.rule) for v in exc.violations], [("", "R-JSON")], "parse_context violations")
        equal(exc.code.value, "CONTEXT_INVALID", "parse_context code")
    else:
        raise AssertionError("parse_context accepted a context with a duplicate key")
