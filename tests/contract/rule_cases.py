"""The failing-document corpus: one or more cases per plan rule (§1, §1.1–§1.3, §1.4).

Each :class:`Case` mutates the full-featured valid plan and states the exact ``(path, rule)`` list the
validator must return. ``structural`` says whether the broken part is expressible in JSON Schema
(the schema-agreement test uses it); validator-only cases are cross-field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from plan_builders import S0, S1, S2, S3, uid, valid_plan

Doc = dict[str, Any]


def _walk_to(doc: Any, path: str) -> tuple[Any, str | int]:
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]
    node = doc
    for t in tokens[:-1]:
        node = node[int(t)] if isinstance(node, list) else node[t]
    last = tokens[-1]
    return node, (int(last) if isinstance(node, list) else last)


def put(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        parent, key = _walk_to(doc, path)
        parent[key] = value
    return mutate


def drop(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        parent, key = _walk_to(doc, path)
        del parent[key]
    return mutate


def steps(n: int) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["steps"] = [{"id": uid(100 + i), "action": "control.noop"} for i in range(n)]
    return mutate


def both(*mutations: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        for m in mutations:
            m(doc)
    return mutate


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Doc], None]
    expected: tuple[tuple[str, str], ...]
    structural: bool = True

    def doc(self) -> Doc:
        d = valid_plan()
        self.mutate(d)
        return d

    @property
    def rules(self) -> set[str]:
        return {rule for _, rule in self.expected}


def c(name: str, mutate: Callable[[Doc], None], *expected: tuple[str, str], structural: bool = True) -> Case:
    return Case(name, mutate, tuple(sorted(expected)), structural)


MiB = 1024 * 1024
UNKNOWN = uid(999)

CASES: list[Case] = [
    # §1 R-PLAN-ID
    c("plan id missing", drop("/id"), ("/id", "R-PLAN-ID")),
    c("plan id uppercase", put("/id", "0A1B2C3D-0000-4000-8000-00000000ABCD"), ("/id", "R-PLAN-ID")),
    c("plan id uuid v1", put("/id", "0a1b2c3d-0000-1000-8000-00000000abcd"), ("/id", "R-PLAN-ID")),
    c("plan id bad variant", put("/id", "0a1b2c3d-0000-4000-c000-00000000abcd"), ("/id", "R-PLAN-ID")),
    c("plan id not a string", put("/id", 12), ("/id", "R-PLAN-ID")),
    c("plan id braces", put("/id", "{0a1b2c3d-0000-4000-8000-00000000abcd}"), ("/id", "R-PLAN-ID")),
    # R-PLAN-VERSION
    c("version missing", drop("/version"), ("/version", "R-PLAN-VERSION")),
    c("version zero", put("/version", 0), ("/version", "R-PLAN-VERSION")),
    c("version boolean", put("/version", True), ("/version", "R-PLAN-VERSION")),
    c("version string", put("/version", "1"), ("/version", "R-PLAN-VERSION")),
    c("version above 2^53-1", put("/version", 2**53), ("/version", "R-PLAN-VERSION")),
    c("version fractional", put("/version", 1.5), ("/version", "R-PLAN-VERSION")),
    # R-PLAN-NAME
    c("name missing", drop("/name"), ("/name", "R-PLAN-NAME")),
    c("name empty", put("/name", ""), ("/name", "R-PLAN-NAME")),
    c("name 201 chars", put("/name", "n" * 201), ("/name", "R-PLAN-NAME")),
    c("name with newline inside", put("/name", "a\nb"), ("/name", "R-PLAN-NAME")),
    c("name with DEL", put("/name", "a\x7f"), ("/name", "R-PLAN-NAME")),
    c("name with C1 control", put("/name", "a\x85b"), ("/name", "R-PLAN-NAME")),
    c("name not a string", put("/name", ["n"]), ("/name", "R-PLAN-NAME")),
    # R-PLAN-CREATED
    c("created_at missing", drop("/created_at"), ("/created_at", "R-PLAN-CREATED")),
    c("created_at zero", put("/created_at", 0), ("/created_at", "R-PLAN-CREATED")),
    c("created_at negative", put("/created_at", -5), ("/created_at", "R-PLAN-CREATED")),
    c("created_at above 2^53-1", put("/created_at", 2**53), ("/created_at", "R-PLAN-CREATED")),
    c("created_at boolean", put("/created_at", True), ("/created_at", "R-PLAN-CREATED")),
    # R-PLAN-STEPS
    c("steps missing", drop("/steps"), ("/steps", "R-PLAN-STEPS")),
    c("steps empty", put("/steps", []), ("/steps", "R-PLAN-STEPS")),
    c("steps 1025", steps(1025), ("/steps", "R-PLAN-STEPS")),
    c("steps not an array", put("/steps", {"a": 1}), ("/steps", "R-PLAN-STEPS")),
    c("step not an object", put("/steps/3", "control.noop"), ("/steps/3", "R-PLAN-STEPS")),
    # R-PLAN-REQS
    c("requirements missing", drop("/context_requirements"), ("/context_requirements", "R-PLAN-REQS")),
    c("requirements empty", put("/context_requirements", []), ("/context_requirements", "R-PLAN-REQS")),
    c("requirements duplicate", put("/context_requirements", ["A", "B", "A"]), ("/context_requirements/2", "R-PLAN-REQS")),
    c("requirement starts with digit", put("/context_requirements", ["1A"]), ("/context_requirements/0", "R-PLAN-REQS")),
    c("requirement with space", put("/context_requirements", ["A B"]), ("/context_requirements/0", "R-PLAN-REQS")),
    c("requirement 129 chars", put("/context_requirements", ["k" * 129]), ("/context_requirements/0", "R-PLAN-REQS")),
    c("requirement not a string", put("/context_requirements", ["A", 7]), ("/context_requirements/1", "R-PLAN-REQS")),
    c("requirements a string", put("/context_requirements", "A"), ("/context_requirements", "R-PLAN-REQS")),
    # R-PLAN-TIMEOUT
    c("plan timeout zero", put("/timeout_ms", 0), ("/timeout_ms", "R-PLAN-TIMEOUT")),
    c("plan timeout over a day", put("/timeout_ms", 86_400_001), ("/timeout_ms", "R-PLAN-TIMEOUT")),
    c("plan timeout boolean", put("/timeout_ms", True), ("/timeout_ms", "R-PLAN-TIMEOUT")),
    c("plan timeout null", put("/timeout_ms", None), ("/timeout_ms", "R-PLAN-TIMEOUT")),
    # R-PLAN-PARALLEL
    c("max_parallel zero", put("/max_parallel", 0), ("/max_parallel", "R-PLAN-PARALLEL")),
    c("max_parallel 257", put("/max_parallel", 257), ("/max_parallel", "R-PLAN-PARALLEL")),
    c("max_parallel boolean", put("/max_parallel", False), ("/max_parallel", "R-PLAN-PARALLEL")),
    # R-PLAN-COMPENSATE
    c("compensate string", put("/compensate_on_failure", "true"), ("/compensate_on_failure", "R-PLAN-COMPENSATE")),
    c("compensate integer", put("/compensate_on_failure", 1), ("/compensate_on_failure", "R-PLAN-COMPENSATE")),
    c("compensate null", put("/compensate_on_failure", None), ("/compensate_on_failure", "R-PLAN-COMPENSATE")),
    # R-PLAN-DESCRIPTION
    c("description 4001 chars", put("/description", "d" * 4001), ("/description", "R-PLAN-DESCRIPTION")),
    c("description number", put("/description", 5), ("/description", "R-PLAN-DESCRIPTION")),
    # R-PLAN-METADATA
    c("metadata array", put("/metadata", []), ("/metadata", "R-PLAN-METADATA")),
    c("metadata null", put("/metadata", None), ("/metadata", "R-PLAN-METADATA")),
    # R-NO-EXTRA
    c("unknown plan field", put("/steps_count", 4), ("/steps_count", "R-NO-EXTRA")),
    c("unknown plan field needing escapes", put("/a~1b~0c", 1), ("/a~1b~0c", "R-NO-EXTRA")),
    c("unknown step field", put("/steps/0/when", "always"), ("/steps/0/when", "R-NO-EXTRA")),
    c("unknown retry policy field", put("/steps/1/retry_policy/jitter", True), ("/steps/1/retry_policy/jitter", "R-NO-EXTRA")),
    c("unknown binding field", put("/steps/1/inputs/~1env~1VERSION/default", "0"),
      ("/steps/1/inputs/~1env~1VERSION/default", "R-NO-EXTRA")),
    c("unknown compensation field", put("/steps/2/compensation/retries", 2), ("/steps/2/compensation/retries", "R-NO-EXTRA")),
    # §1.1 R-STEP-ID
    c("step id missing", drop("/steps/3/id"), ("/steps/3/id", "R-STEP-ID")),
    c("step id not a uuid", put("/steps/3/id", "step-4"), ("/steps/3/id", "R-STEP-ID")),
    c("step id number", put("/steps/3/id", 4), ("/steps/3/id", "R-STEP-ID")),
    # R-STEP-UNIQUE
    c("step id repeated", put("/steps/3/id", S2), ("/steps/3/id", "R-STEP-UNIQUE"), structural=False),
    # R-STEP-ACTION
    c("action missing", drop("/steps/0/action"), ("/steps/0/action", "R-STEP-ACTION")),
    c("action uppercase", put("/steps/0/action", "Control.echo"), ("/steps/0/action", "R-STEP-ACTION")),
    c("action empty segment", put("/steps/0/action", "control..echo"), ("/steps/0/action", "R-STEP-ACTION")),
    c("action trailing dot", put("/steps/0/action", "control."), ("/steps/0/action", "R-STEP-ACTION")),
    c("action leading digit", put("/steps/0/action", "1control"), ("/steps/0/action", "R-STEP-ACTION")),
    c("action with dash", put("/steps/0/action", "shell-run"), ("/steps/0/action", "R-STEP-ACTION")),
    c("action not a string", put("/steps/0/action", None), ("/steps/0/action", "R-STEP-ACTION")),
    # R-STEP-PAYLOAD
    c("payload array", put("/steps/0/payload", [1]), ("/steps/0/payload", "R-STEP-PAYLOAD")),
    c("payload string", put("/steps/3/payload", "{}"), ("/steps/3/payload", "R-STEP-PAYLOAD")),
    c("payload over 1 MiB", put("/steps/3/payload", {"b": "x" * (MiB - 7)}), ("/steps/3/payload", "R-STEP-PAYLOAD"),
      structural=False),
    c("payload over 1 MiB in UTF-8 bytes", put("/steps/3/payload", {"b": "é" * (MiB // 2)}),
      ("/steps/3/payload", "R-STEP-PAYLOAD"), structural=False),
    # R-STEP-DEPS
    c("depends_on not an array", put("/steps/3/depends_on", S2), ("/steps/3/depends_on", "R-STEP-DEPS")),
    c("dependency not a string", put("/steps/3/depends_on", [S2, 3]), ("/steps/3/depends_on/1", "R-STEP-DEPS")),
    c("dependency not a uuid", put("/steps/3/depends_on", ["step-3"]), ("/steps/3/depends_on/0", "R-STEP-DEPS")),
    c("dependency repeated", put("/steps/3/depends_on", [S2, S0, S2]), ("/steps/3/depends_on/2", "R-STEP-DEPS")),
    c("dependency on itself", put("/steps/3/depends_on", [S2, S3]), ("/steps/3/depends_on/1", "R-STEP-DEPS"),
      structural=False),
    c("dependency names no step", put("/steps/3/depends_on", [UNKNOWN]), ("/steps/3/depends_on/0", "R-STEP-DEPS"),
      structural=False),
    # R-STEP-ONFAIL
    c("on_failure unknown", put("/steps/3/on_failure", "abort"), ("/steps/3/on_failure", "R-STEP-ONFAIL")),
    c("on_failure uppercase", put("/steps/3/on_failure", "HALT"), ("/steps/3/on_failure", "R-STEP-ONFAIL")),
    c("on_failure not a string", put("/steps/3/on_failure", 0), ("/steps/3/on_failure", "R-STEP-ONFAIL")),
    # R-STEP-RETRY
    c("retry policy with on_failure halt", put("/steps/3/retry_policy", {}), ("/steps/3/retry_policy", "R-STEP-RETRY")),
    c("retry policy with on_failure skip", put("/steps/2/retry_policy", {"max_attempts": 2}),
      ("/steps/2/retry_policy", "R-STEP-RETRY")),
    c("retry policy without on_failure", both(drop("/steps/1/on_failure")), ("/steps/1/retry_policy", "R-STEP-RETRY")),
    c("retry policy not an object", put("/steps/1/retry_policy", [3]), ("/steps/1/retry_policy", "R-STEP-RETRY")),
    c("max_attempts zero", put("/steps/1/retry_policy/max_attempts", 0), ("/steps/1/retry_policy/max_attempts", "R-STEP-RETRY")),
    c("max_attempts 101", put("/steps/1/retry_policy/max_attempts", 101), ("/steps/1/retry_policy/max_attempts", "R-STEP-RETRY")),
    c("max_attempts boolean", put("/steps/1/retry_policy/max_attempts", True),
      ("/steps/1/retry_policy/max_attempts", "R-STEP-RETRY")),
    c("initial delay negative", put("/steps/1/retry_policy/initial_delay_ms", -1),
      ("/steps/1/retry_policy/initial_delay_ms", "R-STEP-RETRY")),
    c("initial delay over an hour", both(put("/steps/1/retry_policy/initial_delay_ms", 3_600_001),
                                         put("/steps/1/retry_policy/max_delay_ms", 3_600_000)),
      ("/steps/1/retry_policy/initial_delay_ms", "R-STEP-RETRY")),
    c("backoff below 1", put("/steps/1/retry_policy/backoff_multiplier", 0.5),
      ("/steps/1/retry_policy/backoff_multiplier", "R-STEP-RETRY")),
    c("backoff above 10", put("/steps/1/retry_policy/backoff_multiplier", 10.5),
      ("/steps/1/retry_policy/backoff_multiplier", "R-STEP-RETRY")),
    c("backoff string", put("/steps/1/retry_policy/backoff_multiplier", "2"),
      ("/steps/1/retry_policy/backoff_multiplier", "R-STEP-RETRY")),
    c("backoff boolean", put("/steps/1/retry_policy/backoff_multiplier", True),
      ("/steps/1/retry_policy/backoff_multiplier", "R-STEP-RETRY")),
    c("max delay over an hour", put("/steps/1/retry_policy/max_delay_ms", 3_600_001),
      ("/steps/1/retry_policy/max_delay_ms", "R-STEP-RETRY")),
    c("max delay below initial", put("/steps/1/retry_policy/max_delay_ms", 50),
      ("/steps/1/retry_policy/max_delay_ms", "R-STEP-RETRY"), structural=False),
    c("initial delay above the default max", both(drop("/steps/1/retry_policy/max_delay_ms"),
                                                  put("/steps/1/retry_policy/initial_delay_ms", 20_000)),
      ("/steps/1/retry_policy/initial_delay_ms", "R-STEP-RETRY"), structural=False),
    c("retry_on empty", put("/steps/1/retry_policy/retry_on", []), ("/steps/1/retry_policy/retry_on", "R-STEP-RETRY")),
    c("retry_on unknown code", put("/steps/1/retry_policy/retry_on", ["PLAN_TIMEOUT"]),
      ("/steps/1/retry_policy/retry_on/0", "R-STEP-RETRY")),
    c("retry_on repeated", put("/steps/1/retry_policy/retry_on", ["STEP_FAILED", "STEP_FAILED"]),
      ("/steps/1/retry_policy/retry_on/1", "R-STEP-RETRY")),
    c("retry_on a string", put("/steps/1/retry_policy/retry_on", "STEP_FAILED"),
      ("/steps/1/retry_policy/retry_on", "R-STEP-RETRY")),
    # R-STEP-TIMEOUT
    c("step timeout zero", put("/steps/1/timeout_ms", 0), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT")),
    c("step timeout over a day", put("/steps/1/timeout_ms", 86_400_001), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT")),
    c("step timeout string", put("/steps/1/timeout_ms", "60000"), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT")),
    c("step timeout above the plan's", put("/steps/1/timeout_ms", 600_001), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT"),
      structural=False),
    c("step timeout above the default plan timeout", both(drop("/timeout_ms"), put("/steps/1/timeout_ms", 3_600_001)),
      ("/steps/1/timeout_ms", "R-STEP-TIMEOUT"), structural=False),
    # §1.3 R-STEP-INPUTS
    c("inputs array", put("/steps/1/inputs", []), ("/steps/1/inputs", "R-STEP-INPUTS")),
    c("binding key empty", put("/steps/1/inputs", {"": {"step": S0, "pointer": ""}}), ("/steps/1/inputs/", "R-STEP-INPUTS")),
    c("binding key empty after a root source pointer", put("/steps/1/inputs", {"/a": {"step": S0, "pointer": ""},
                                                                             "": {"step": S0, "pointer": ""}}),
      ("/steps/1/inputs/", "R-STEP-INPUTS")),
    c("binding key without slash", put("/steps/1/inputs", {"env": {"step": S0, "pointer": ""}}),
      ("/steps/1/inputs/env", "R-STEP-INPUTS")),
    c("binding key bad escape", put("/steps/1/inputs", {"/a~2": {"step": S0, "pointer": ""}}),
      ("/steps/1/inputs/~1a~02", "R-STEP-INPUTS")),
    c("binding not an object", put("/steps/1/inputs/~1env~1VERSION", S0), ("/steps/1/inputs/~1env~1VERSION", "R-STEP-INPUTS")),
    c("binding step missing", drop("/steps/1/inputs/~1env~1VERSION/step"),
      ("/steps/1/inputs/~1env~1VERSION/step", "R-STEP-INPUTS")),
    c("binding pointer missing", drop("/steps/1/inputs/~1env~1VERSION/pointer"),
      ("/steps/1/inputs/~1env~1VERSION/pointer", "R-STEP-INPUTS")),
    c("binding step not a uuid", put("/steps/1/inputs/~1env~1VERSION/step", "source"),
      ("/steps/1/inputs/~1env~1VERSION/step", "R-STEP-INPUTS")),
    c("binding step not a string", put("/steps/1/inputs/~1env~1VERSION/step", 0),
      ("/steps/1/inputs/~1env~1VERSION/step", "R-STEP-INPUTS")),
    c("binding pointer without slash", put("/steps/1/inputs/~1env~1VERSION/pointer", "value"),
      ("/steps/1/inputs/~1env~1VERSION/pointer", "R-STEP-INPUTS")),
    c("binding pointer not a string", put("/steps/1/inputs/~1env~1VERSION/pointer", ["value"]),
      ("/steps/1/inputs/~1env~1VERSION/pointer", "R-STEP-INPUTS")),
    c("binding source names no step", put("/steps/1/inputs/~1env~1VERSION/step", UNKNOWN),
      ("/steps/1/inputs/~1env~1VERSION/step", "R-STEP-INPUTS"), structural=False),
    # R-BIND-REF
    c("binding from a later step", put("/steps/1/inputs/~1env~1VERSION/step", S2),
      ("/steps/1/inputs/~1env~1VERSION/step", "R-BIND-REF"), structural=False),
    c("binding from a sideways step", both(put("/steps/3/depends_on", [S0]),
                                            put("/steps/3/inputs", {"/x": {"step": S1, "pointer": ""}})),
      ("/steps/3/inputs/~1x/step", "R-BIND-REF"), structural=False),
    c("binding from itself", put("/steps/1/inputs/~1env~1VERSION/step", S1),
      ("/steps/1/inputs/~1env~1VERSION/step", "R-BIND-REF"), structural=False),
    # R-STEP-COMP
    c("compensation not an object", put("/steps/2/compensation", "fs.delete"), ("/steps/2/compensation", "R-STEP-COMP")),
    c("compensation action missing", drop("/steps/2/compensation/action"), ("/steps/2/compensation/action", "R-STEP-COMP")),
    c("compensation action invalid", put("/steps/2/compensation/action", "FS.delete"),
      ("/steps/2/compensation/action", "R-STEP-COMP")),
    c("compensation payload array", put("/steps/2/compensation/payload", []), ("/steps/2/compensation/payload", "R-STEP-COMP")),
    c("compensation timeout zero", put("/steps/2/compensation/timeout_ms", 0),
      ("/steps/2/compensation/timeout_ms", "R-STEP-COMP")),
    c("compensation timeout above the plan's", put("/steps/2/compensation/timeout_ms", 600_001),
      ("/steps/2/compensation/timeout_ms", "R-STEP-COMP"), structural=False),
    c("compensation payload over 1 MiB", put("/steps/2/compensation/payload", {"b": "x" * MiB}),
      ("/steps/2/compensation/payload", "R-STEP-COMP"), structural=False),
    # R-STEP-NAME
    c("step name empty", put("/steps/0/name", ""), ("/steps/0/name", "R-STEP-NAME")),
    c("step name 201 chars", put("/steps/0/name", "s" * 201), ("/steps/0/name", "R-STEP-NAME")),
    c("step name with tab", put("/steps/0/name", "a\tb"), ("/steps/0/name", "R-STEP-NAME")),
    c("step name number", put("/steps/0/name", 1), ("/steps/0/name", "R-STEP-NAME")),
    # R-PLAN-ACYCLIC
    c("two-step cycle", put("/steps/0/depends_on", [S1]), ("/steps/0/depends_on", "R-PLAN-ACYCLIC"), structural=False),
    c("four-step cycle", put("/steps/0/depends_on", [S3]), ("/steps/0/depends_on", "R-PLAN-ACYCLIC"), structural=False),
]

#: Documents that are valid although they look unusual (boundaries, opaque content, unicode).
VALID_CASES: list[Case] = [
    c("minimal optional fields absent", both(*(drop(p) for p in (
        "/timeout_ms", "/max_parallel", "/compensate_on_failure", "/description", "/metadata")))),
    c("version 2^53-1", put("/version", 2**53 - 1)),
    c("created_at 1", put("/created_at", 1)),
    c("name 200 chars", put("/name", "n" * 200)),
    c("name non-ASCII", put("/name", "déploiement 部署 🚀")),
    c("description 4000 chars with newlines", put("/description", ("line\n" * 800))),
    c("1024 steps", steps(1024)),
    c("requirement 128 chars", put("/context_requirements", ["k" * 128])),
    c("requirement with dots and dashes", put("/context_requirements", ["_a.b-c", "Z9"])),
    c("timeouts at their bounds", both(put("/timeout_ms", 86_400_000), put("/steps/1/timeout_ms", 86_400_000),
                                       put("/max_parallel", 256))),
    c("backoff integer 1", put("/steps/1/retry_policy/backoff_multiplier", 1)),
    c("backoff 10.0", put("/steps/1/retry_policy/backoff_multiplier", 10.0)),
    c("delays equal", both(put("/steps/1/retry_policy/initial_delay_ms", 0), put("/steps/1/retry_policy/max_delay_ms", 0))),
    c("empty retry policy with retry", put("/steps/1/retry_policy", {})),
    c("retry without policy", drop("/steps/1/retry_policy")),
    c("payload exactly 1 MiB", put("/steps/3/payload", {"b": "x" * (MiB - 8)})),
    c("payload with any keys", put("/steps/3/payload", {"": 1, "~/": {"nested": [{"k": None}]}, "id": "x"})),
    c("metadata with any keys", put("/metadata", {"retry_policy": 1, "x": {"y": []}})),
    c("empty inputs and depends_on", both(put("/steps/0/inputs", {}), put("/steps/0/depends_on", []))),
    c("binding to a transitive dependency", put("/steps/3/inputs", {"/a/b~1c": {"step": S1, "pointer": "/x/0"}})),
    c("binding pointer with escapes", put("/steps/2/inputs/~1content/pointer", "/a~0b/~1c")),
    c("action with digits and underscores", put("/steps/0/action", "my_domain2.sub_action.v2")),
    c("single-segment action", put("/steps/0/action", "execute_plan")),
    c("steps out of plan order", put("/steps", list(reversed(valid_plan()["steps"])))),
]
