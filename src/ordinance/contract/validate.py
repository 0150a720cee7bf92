"""The plan and context validator (CONTRACT §0.6, §1, §1.1–§1.4, §2).

Validation never raises on any input (§1.4). It returns every violation as a :class:`Violation`
``(path, rule, message)``, sorted by path, then rule, then message, so the same input always gives
the same list (``R-VALIDATE-DET``). A §0.6 input-hygiene failure is ``R-JSON`` at ``""`` and nothing
else is reported. A missing field or a value of the wrong type breaks that field's own rule at that
field's path; an unknown field is ``R-NO-EXTRA`` at its path. Rule ids and clauses are tabled in
:mod:`ordinance.contract.rules`.

The hot path is plain Python over dicts and lists (no pydantic): precompiled regexes, exact type
tests (a boolean is never an integer, ``1.0`` is not an integer), iterative graph algorithms and
ancestor sets held as integer bitsets. Models are built only by :func:`parse_plan` /
:func:`parse_context`, after a document has passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from .canonical import canonical_json
from .errors import ErrorCode
from .jsonio import MAX_BYTES, MAX_DEPTH, DocumentError, json_type as _type_name, read_document
from .models import (
    ACTION_PATTERN,
    DEFAULT_PLAN_TIMEOUT_MS,
    MAX_SAFE_INT,
    MAX_TIMEOUT_MS,
    REQUIREMENT_PATTERN,
    UUID4_PATTERN,
    ExecutionContext,
    Plan,
)
from .pointer import POINTER_RE, escape

__all__ = [
    "Violation", "PlanInvalid", "ContextInvalid",
    "validate_plan", "validate_context", "parse_plan", "parse_context",
    "MAX_PAYLOAD_BYTES", "MAX_STEPS",
]

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_STEPS = 1024
MAX_NAME = 200
MAX_DESCRIPTION = 4000
MAX_PARALLEL = 256
MAX_RETRY_DELAY_MS = 3_600_000

_UUID = re.compile(UUID4_PATTERN).fullmatch
_ACTION = re.compile(ACTION_PATTERN).fullmatch
_REQUIREMENT = re.compile(REQUIREMENT_PATTERN).fullmatch
_POINTER = POINTER_RE.fullmatch
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]").search

_PLAN_FIELDS = frozenset({
    "id", "version", "name", "created_at", "steps", "context_requirements",
    "timeout_ms", "max_parallel", "compensate_on_failure", "description", "metadata",
})
_STEP_FIELDS = frozenset({
    "id", "action", "payload", "depends_on", "on_failure", "retry_policy", "timeout_ms", "inputs",
    "compensation", "name",
})
_RETRY_FIELDS = frozenset({"max_attempts", "initial_delay_ms", "backoff_multiplier", "max_delay_ms", "retry_on"})
_BINDING_FIELDS = frozenset({"step", "pointer"})
_COMPENSATION_FIELDS = frozenset({"action", "payload", "timeout_ms"})
_CONTEXT_FIELDS = frozenset({
    "execution_id", "plan_id", "started_at", "deadline_ms", "environment", "principal", "trigger_type",
})
_PRINCIPAL_FIELDS = frozenset({"user_id", "token"})
_ON_FAILURE = ("halt", "skip", "retry")
_RETRY_ON = ("STEP_FAILED", "STEP_TIMEOUT")
_TRIGGERS = ("manual", "api", "schedule", "event", "nested")
_DEFAULT_MAX_DELAY_MS = 10_000
_DEFAULT_INITIAL_DELAY_MS = 200
_ABSENT: Any = object()
_MSG_UUID = "must be a lowercase UUID v4 (xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx)"


# -- violations and errors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    """One broken rule (§1.4): ``path`` is a JSON Pointer into the document, ``rule`` a rule id."""

    path: str
    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path or '(root)'}: {self.rule}: {self.message}"


class PlanInvalid(ValueError):
    """A plan broke §0.6 or §1 (PLAN_INVALID); ``violations`` lists every violation."""

    code = ErrorCode.PLAN_INVALID

    def __init__(self, violations: Iterable[Violation]):
        self.violations: tuple[Violation, ...] = tuple(violations)
        super().__init__(_summary("plan", self.violations))

    def details(self) -> dict[str, Any]:
        """``ExecutionError.details`` for PLAN_INVALID: ``{"violations": [...]}``."""
        return {"violations": [v.to_dict() for v in self.violations]}


class ContextInvalid(ValueError):
    """A context broke §2. ``code`` is CONTEXT_MISSING when the only problems are missing
    requirement keys (``R-CTX-REQS``; ``missing`` names them), CONTEXT_INVALID otherwise."""

    def __init__(self, violations: Iterable[Violation], missing: Iterable[str] = ()):
        self.violations: tuple[Violation, ...] = tuple(violations)
        self.missing: tuple[str, ...] = tuple(missing)
        only_missing = bool(self.violations) and all(v.rule == "R-CTX-REQS" for v in self.violations)
        self.code: ErrorCode = ErrorCode.CONTEXT_MISSING if only_missing else ErrorCode.CONTEXT_INVALID
        super().__init__(_summary("context", self.violations))

    def details(self) -> dict[str, Any]:
        """``ExecutionError.details``: ``violations``, and ``missing`` for CONTEXT_MISSING."""
        details: dict[str, Any] = {"violations": [v.to_dict() for v in self.violations]}
        if self.code is ErrorCode.CONTEXT_MISSING:
            details["missing"] = list(self.missing)
        return details


def _summary(what: str, violations: tuple[Violation, ...]) -> str:
    if not violations:
        return f"invalid {what}"
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"invalid {what}: {first}{more}"


# -- small value checks (each returns an error message, or None when the value is fine) -------


def _int_error(value: Any, lo: int, hi: int) -> str | None:
    if type(value) is not int:
        return f"must be an integer, got {_type_name(value)}"
    if value < lo or value > hi:
        return f"must be between {lo} and {hi}, got {value}"
    return None


def _uuid_error(value: Any) -> str | None:
    if type(value) is not str:
        return f"must be a string, got {_type_name(value)}"
    if _UUID(value) is None:
        return _MSG_UUID
    return None


def _name_error(value: Any, hi: int = MAX_NAME) -> str | None:
    if type(value) is not str:
        return f"must be a string, got {_type_name(value)}"
    if not value or len(value) > hi:
        return f"must be 1–{hi} characters, got {len(value)}"
    if _CONTROL(value):
        return "must not contain control characters"
    return None


def _action_error(value: Any) -> str | None:
    if type(value) is not str:
        return f"must be a string, got {_type_name(value)}"
    if _ACTION(value) is None:
        return "must be dotted lowercase segments like \"fs.write\" (^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$)"
    return None


def _enum_error(value: Any, allowed: tuple[str, ...]) -> str | None:
    if type(value) is not str:
        return f"must be a string, got {_type_name(value)}"
    if value not in allowed:
        return "must be one of " + ", ".join(f'"{a}"' for a in allowed)
    return None


def _object_error(value: Any) -> str | None:
    if type(value) is not dict:
        return f"must be an object, got {_type_name(value)}"
    return None


def _missing(field: str) -> str:
    return f"required field \"{field}\" is missing"


# -- plan ------------------------------------------------------------------------------------


class _PlanCheck:
    """One validation run over a hygienic plan document; :meth:`run` returns the violations unsorted.

    Pass 1 checks every field and records step ids, dependency lists and bindings; pass 2 resolves
    references against the id index and checks the graph (``R-STEP-UNIQUE``, ``R-STEP-DEPS``
    existence, ``R-PLAN-ACYCLIC``, binding sources, ``R-BIND-REF``); pass 3 measures payloads.
    """

    __slots__ = ("doc", "out", "plan_timeout", "step_ids", "dep_lists", "bindings", "payloads", "good_pointers")

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.out: list[Violation] = []
        self.plan_timeout: int | None = DEFAULT_PLAN_TIMEOUT_MS
        #: per step: its id when it is a valid UUID v4 string, else None
        self.step_ids: list[str | None] = []
        #: per step: its depends_on list when that is an array, else None
        self.dep_lists: list[list[Any] | None] = []
        #: (binding step index, binding key, source step id string)
        self.bindings: list[tuple[int, str, str]] = []
        #: (path, rule, payload object) for the §1.1 canonical-size check
        self.payloads: list[tuple[str, str, dict[str, Any]]] = []
        #: pointers already seen to be valid (bindings repeat the same few pointers)
        self.good_pointers: set[str] = set()

    def add(self, path: str, rule: str, message: str) -> None:
        self.out.append(Violation(path, rule, message))

    def run(self) -> list[Violation]:
        self.check_plan_fields()
        steps = self.doc.get("steps", _ABSENT)
        if type(steps) is list:
            for i, step in enumerate(steps):
                if type(step) is dict:
                    self.check_step(i, step)
                else:
                    self.add(f"/steps/{i}", "R-PLAN-STEPS", f"a step must be an object, got {_type_name(step)}")
                    self.step_ids.append(None)
                    self.dep_lists.append(None)
            self.check_references_and_graph()
        self.check_payload_sizes()
        return self.out

    # §1 -----------------------------------------------------------------------------------

    def check_plan_fields(self) -> None:
        """§1: the plan's own fields (the steps' contents are checked by :meth:`check_step`)."""
        doc, add = self.doc, self.add
        if not doc.keys() <= _PLAN_FIELDS:
            for key in doc.keys() - _PLAN_FIELDS:
                add("/" + escape(key), "R-NO-EXTRA", f"unknown field \"{key}\" (not in §1)")

        for field, rule, check in (
            ("id", "R-PLAN-ID", _uuid_error),
            ("version", "R-PLAN-VERSION", _positive_int_error),
            ("name", "R-PLAN-NAME", _name_error),
            ("created_at", "R-PLAN-CREATED", _positive_int_error),
        ):
            value = doc.get(field, _ABSENT)
            error = _missing(field) if value is _ABSENT else check(value)
            if error:
                add("/" + field, rule, error)

        steps = doc.get("steps", _ABSENT)
        if steps is _ABSENT:
            add("/steps", "R-PLAN-STEPS", _missing("steps"))
        elif type(steps) is not list:
            add("/steps", "R-PLAN-STEPS", f"must be an array, got {_type_name(steps)}")
        elif not 1 <= len(steps) <= MAX_STEPS:
            add("/steps", "R-PLAN-STEPS", f"must hold 1–{MAX_STEPS} steps, got {len(steps)}")

        self.check_requirements(doc.get("context_requirements", _ABSENT))

        timeout = doc.get("timeout_ms", _ABSENT)
        if timeout is not _ABSENT:
            error = _int_error(timeout, 1, MAX_TIMEOUT_MS)
            if error:
                add("/timeout_ms", "R-PLAN-TIMEOUT", error)
                self.plan_timeout = None  # unknown: step timeouts are then held to their own bounds only
            else:
                self.plan_timeout = timeout
        for field, rule, check in (
            ("max_parallel", "R-PLAN-PARALLEL", _parallel_error),
            ("compensate_on_failure", "R-PLAN-COMPENSATE", _bool_error),
            ("description", "R-PLAN-DESCRIPTION", _description_error),
            ("metadata", "R-PLAN-METADATA", _object_error),
        ):
            value = doc.get(field, _ABSENT)
            if value is not _ABSENT:
                error = check(value)
                if error:
                    add("/" + field, rule, error)

    def check_requirements(self, reqs: Any) -> None:
        """§1 ``R-PLAN-REQS``: non-empty, unique, each matching the requirement pattern."""
        add = self.add
        if reqs is _ABSENT:
            add("/context_requirements", "R-PLAN-REQS", _missing("context_requirements"))
            return
        if type(reqs) is not list:
            add("/context_requirements", "R-PLAN-REQS", f"must be an array, got {_type_name(reqs)}")
            return
        if not reqs:
            add("/context_requirements", "R-PLAN-REQS", "must not be empty")
        seen: set[str] = set()
        for i, req in enumerate(reqs):
            path = f"/context_requirements/{i}"
            if type(req) is not str:
                add(path, "R-PLAN-REQS", f"must be a string, got {_type_name(req)}")
            elif _REQUIREMENT(req) is None:
                add(path, "R-PLAN-REQS", "must match ^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
            elif req in seen:
                add(path, "R-PLAN-REQS", f"duplicate requirement \"{req}\"")
            else:
                seen.add(req)

    # §1.1 ---------------------------------------------------------------------------------

    def check_step(self, i: int, step: dict[str, Any]) -> None:
        """§1.1 field rules for one step (references are resolved later)."""
        add = self.add
        base = f"/steps/{i}"
        if not step.keys() <= _STEP_FIELDS:
            for key in step.keys() - _STEP_FIELDS:
                add(f"{base}/{escape(key)}", "R-NO-EXTRA", f"unknown field \"{key}\" (not in §1.1)")

        step_id = step.get("id", _ABSENT)
        if type(step_id) is str and _UUID(step_id) is not None:
            self.step_ids.append(step_id)
        else:
            add(base + "/id", "R-STEP-ID", _missing("id") if step_id is _ABSENT else _uuid_error(step_id) or "")
            self.step_ids.append(None)

        action = step.get("action", _ABSENT)
        if type(action) is not str or _ACTION(action) is None:
            add(base + "/action", "R-STEP-ACTION",
                _missing("action") if action is _ABSENT else _action_error(action) or "")

        payload = step.get("payload", _ABSENT)
        if payload is not _ABSENT:
            if type(payload) is dict:
                if payload:
                    self.payloads.append((base + "/payload", "R-STEP-PAYLOAD", payload))
            else:
                add(base + "/payload", "R-STEP-PAYLOAD", f"must be an object, got {_type_name(payload)}")

        deps = step.get("depends_on", _ABSENT)
        if deps is _ABSENT:
            self.dep_lists.append(None)
        elif type(deps) is list:
            self.dep_lists.append(deps)
        else:
            add(base + "/depends_on", "R-STEP-DEPS", f"must be an array, got {_type_name(deps)}")
            self.dep_lists.append(None)

        on_failure = step.get("on_failure", "halt")
        if type(on_failure) is not str or on_failure not in _ON_FAILURE:
            add(base + "/on_failure", "R-STEP-ONFAIL", _enum_error(on_failure, _ON_FAILURE) or "invalid")
            on_failure = None
        policy = step.get("retry_policy", _ABSENT)
        if policy is not _ABSENT:
            self.check_retry_policy(base + "/retry_policy", policy, on_failure)
        timeout = step.get("timeout_ms", _ABSENT)
        if timeout is not _ABSENT:
            self.check_timeout(base + "/timeout_ms", "R-STEP-TIMEOUT", timeout)
        inputs = step.get("inputs", _ABSENT)
        if inputs is not _ABSENT:
            self.check_inputs(i, base + "/inputs", inputs)
        compensation = step.get("compensation", _ABSENT)
        if compensation is not _ABSENT:
            self.check_compensation(base + "/compensation", compensation)
        name = step.get("name", _ABSENT)
        if name is not _ABSENT and (error := _name_error(name)) is not None:
            add(base + "/name", "R-STEP-NAME", error)

    def check_timeout(self, path: str, rule: str, timeout: Any) -> None:
        """1–86 400 000 and ≤ the plan's (possibly defaulted) ``timeout_ms``."""
        error = _int_error(timeout, 1, MAX_TIMEOUT_MS)
        if error:
            self.add(path, rule, error)
        elif self.plan_timeout is not None and timeout > self.plan_timeout:
            self.add(path, rule, f"must not exceed the plan's timeout_ms ({self.plan_timeout}), got {timeout}")

    def check_retry_policy(self, path: str, policy: Any, on_failure: str | None) -> None:
        """§1.2 ``R-STEP-RETRY``; the policy is allowed only when ``on_failure`` is ``"retry"``."""
        add = self.add
        if on_failure is not None and on_failure != "retry":
            add(path, "R-STEP-RETRY", f"allowed only when on_failure is \"retry\" (it is \"{on_failure}\")")
        if type(policy) is not dict:
            add(path, "R-STEP-RETRY", f"must be an object, got {_type_name(policy)}")
            return
        for key in policy.keys() - _RETRY_FIELDS:
            add(f"{path}/{escape(key)}", "R-NO-EXTRA", f"unknown field \"{key}\" (not in §1.2)")
        attempts = policy.get("max_attempts", _ABSENT)
        if attempts is not _ABSENT and (error := _int_error(attempts, 1, 100)):
            add(path + "/max_attempts", "R-STEP-RETRY", error)
        initial = policy.get("initial_delay_ms", _ABSENT)
        initial_ok = True
        if initial is not _ABSENT and (error := _int_error(initial, 0, MAX_RETRY_DELAY_MS)):
            add(path + "/initial_delay_ms", "R-STEP-RETRY", error)
            initial_ok = False
        multiplier = policy.get("backoff_multiplier", _ABSENT)
        if multiplier is not _ABSENT:
            if type(multiplier) is not int and type(multiplier) is not float:
                add(path + "/backoff_multiplier", "R-STEP-RETRY", f"must be a number, got {_type_name(multiplier)}")
            elif not 1.0 <= multiplier <= 10.0:
                add(path + "/backoff_multiplier", "R-STEP-RETRY", f"must be between 1.0 and 10.0, got {multiplier}")
        maximum = policy.get("max_delay_ms", _ABSENT)
        maximum_ok = True
        if maximum is not _ABSENT and (error := _int_error(maximum, 0, MAX_RETRY_DELAY_MS)):
            add(path + "/max_delay_ms", "R-STEP-RETRY", error)
            maximum_ok = False
        if initial_ok and maximum_ok:
            lo = _DEFAULT_INITIAL_DELAY_MS if initial is _ABSENT else initial
            hi = _DEFAULT_MAX_DELAY_MS if maximum is _ABSENT else maximum
            if hi < lo:
                where = "/initial_delay_ms" if maximum is _ABSENT else "/max_delay_ms"
                add(path + where, "R-STEP-RETRY", f"max_delay_ms ({hi}) must be ≥ initial_delay_ms ({lo})")
        retry_on = policy.get("retry_on", _ABSENT)
        if retry_on is not _ABSENT:
            self.check_retry_on(path + "/retry_on", retry_on)

    def check_retry_on(self, path: str, retry_on: Any) -> None:
        if type(retry_on) is not list:
            self.add(path, "R-STEP-RETRY", f"must be an array, got {_type_name(retry_on)}")
            return
        if not retry_on:
            self.add(path, "R-STEP-RETRY", "must not be empty")
        seen: set[str] = set()
        for k, code in enumerate(retry_on):
            if (error := _enum_error(code, _RETRY_ON)) is not None:
                self.add(f"{path}/{k}", "R-STEP-RETRY", error)
            elif code in seen:
                self.add(f"{path}/{k}", "R-STEP-RETRY", f"duplicate error code \"{code}\"")
            else:
                seen.add(code)

    def pointer_ok(self, value: str) -> bool:
        if value in self.good_pointers:
            return True
        if _POINTER(value) is None:
            return False
        self.good_pointers.add(value)
        return True

    def check_inputs(self, i: int, path: str, inputs: Any) -> None:
        """§1.3 ``R-STEP-INPUTS``: ``{payload pointer: {"step": id, "pointer": pointer}}``.

        The source's UUID form and existence are checked in pass 2, against the id index.
        """
        add = self.add
        if type(inputs) is not dict:
            add(path, "R-STEP-INPUTS", f"must be an object, got {_type_name(inputs)}")
            return
        good, pointer_ok, record = self.good_pointers, self.pointer_ok, self.bindings.append
        for target, binding in inputs.items():
            if not target or (target not in good and not pointer_ok(target)):
                add(f"{path}/{escape(target)}", "R-STEP-INPUTS",
                    "a binding key must be a non-empty JSON Pointer into the payload")
            if type(binding) is dict and binding.keys() == _BINDING_FIELDS:  # the common, well-formed case
                source, pointer = binding["step"], binding["pointer"]
                if type(source) is str:
                    record((i, target, source))
                    if type(pointer) is str and (pointer in good or pointer_ok(pointer)):
                        continue
            self.check_binding_slow(i, path, target, binding)

    def check_binding_slow(self, i: int, path: str, target: str, binding: Any) -> None:
        """Every problem of one binding value (the fast path in :meth:`check_inputs` found one)."""
        add = self.add
        bpath = f"{path}/{escape(target)}"
        if type(binding) is not dict:
            add(bpath, "R-STEP-INPUTS", f"a binding must be an object {{\"step\", \"pointer\"}}, got "
                                        f"{_type_name(binding)}")
            return
        fast = binding.keys() == _BINDING_FIELDS
        for key in binding.keys() - _BINDING_FIELDS:
            add(f"{bpath}/{escape(key)}", "R-NO-EXTRA", f"unknown field \"{key}\" (not in §1.3)")
        source = binding.get("step", _ABSENT)
        if source is _ABSENT:
            add(bpath + "/step", "R-STEP-INPUTS", _missing("step"))
        elif type(source) is not str:
            add(bpath + "/step", "R-STEP-INPUTS", f"must be a step id string, got {_type_name(source)}")
        elif not fast:  # the fast path has already recorded it
            self.bindings.append((i, target, source))
        pointer = binding.get("pointer", _ABSENT)
        if pointer is _ABSENT:
            add(bpath + "/pointer", "R-STEP-INPUTS", _missing("pointer"))
        elif type(pointer) is not str:
            add(bpath + "/pointer", "R-STEP-INPUTS", f"must be a string, got {_type_name(pointer)}")
        elif not self.pointer_ok(pointer):
            add(bpath + "/pointer", "R-STEP-INPUTS", "must be a JSON Pointer (RFC 6901) into the source output")

    def check_compensation(self, path: str, comp: Any) -> None:
        """§1.1/§7.4 ``R-STEP-COMP``: ``{"action", "payload"?, "timeout_ms"?}``."""
        add = self.add
        if type(comp) is not dict:
            add(path, "R-STEP-COMP", f"must be an object, got {_type_name(comp)}")
            return
        for key in comp.keys() - _COMPENSATION_FIELDS:
            add(f"{path}/{escape(key)}", "R-NO-EXTRA", f"unknown field \"{key}\" (not in §7.4)")
        action = comp.get("action", _ABSENT)
        if action is _ABSENT:
            add(path + "/action", "R-STEP-COMP", _missing("action"))
        elif (error := _action_error(action)) is not None:
            add(path + "/action", "R-STEP-COMP", error)
        payload = comp.get("payload", _ABSENT)
        if payload is not _ABSENT:
            if type(payload) is dict:
                self.payloads.append((path + "/payload", "R-STEP-COMP", payload))
            else:
                add(path + "/payload", "R-STEP-COMP", f"must be an object, got {_type_name(payload)}")
        timeout = comp.get("timeout_ms", _ABSENT)
        if timeout is not _ABSENT:
            self.check_timeout(path + "/timeout_ms", "R-STEP-COMP", timeout)

    # pass 2: uniqueness, references, graph --------------------------------------------------

    def check_references_and_graph(self) -> None:
        """``R-STEP-UNIQUE``, ``R-STEP-DEPS`` items, ``R-PLAN-ACYCLIC``, binding sources and ``R-BIND-REF``."""
        index: dict[str, int] = {}
        for i, step_id in enumerate(self.step_ids):
            if step_id is not None:
                first = index.setdefault(step_id, i)
                if first != i:
                    self.add(f"/steps/{i}/id", "R-STEP-UNIQUE",
                             f"duplicate step id {step_id} (first used by /steps/{first})")

        deps: list[list[int]] = []
        backward_only = True
        get = index.get
        for i, raw in enumerate(self.dep_lists):
            if not raw:
                deps.append([])
                continue
            resolved: list[int] | None = None
            if all(type(d) is str for d in raw) and len(set(raw)) == len(raw):
                # unique strings: when each names another step (the index holds only valid ids), all is well
                resolved = [get(d, -1) for d in raw]
                if -1 in resolved or i in resolved:
                    resolved = None
            if resolved is None:
                resolved = self.resolve_deps_slow(i, raw, index)
            if resolved and max(resolved) > i:
                backward_only = False
            deps.append(resolved)

        order: Iterable[int]
        remaining: set[int]
        if backward_only:  # plan order is already a topological order: no cycle is possible
            order, remaining = range(len(deps)), set()
        else:
            order, remaining = _topological_order(deps)
            if remaining:
                self.report_cycle(deps, remaining)
        if self.bindings:
            self.check_bindings(index, deps, order, remaining)

    def resolve_deps_slow(self, i: int, raw: list[Any], index: dict[str, int]) -> list[int]:
        """``R-STEP-DEPS`` item by item: a step id string, unique, naming another step of this plan."""
        path = f"/steps/{i}/depends_on"
        resolved: list[int] = []
        seen: set[str] = set()
        for k, dep in enumerate(raw):
            if type(dep) is not str:
                self.add(f"{path}/{k}", "R-STEP-DEPS", f"must be a step id string, got {_type_name(dep)}")
            elif _UUID(dep) is None:
                self.add(f"{path}/{k}", "R-STEP-DEPS", "must be a step id: " + _MSG_UUID)
            elif dep in seen:
                self.add(f"{path}/{k}", "R-STEP-DEPS", f"duplicate dependency {dep}")
            else:
                seen.add(dep)
                j = index.get(dep)
                if j is None:
                    self.add(f"{path}/{k}", "R-STEP-DEPS", f"{dep} names no step of this plan")
                elif j == i:
                    self.add(f"{path}/{k}", "R-STEP-DEPS", "a step cannot depend on itself")
                else:
                    resolved.append(j)
        return resolved

    def report_cycle(self, deps: list[list[int]], remaining: set[int]) -> None:
        cycle = _find_cycle(deps, remaining)
        ids = [str(self.step_ids[i]) for i in cycle]
        ids.append(ids[0])
        self.add(f"/steps/{cycle[0]}/depends_on", "R-PLAN-ACYCLIC", "dependency cycle: " + " → ".join(ids))

    def check_bindings(self, index: dict[str, int], deps: list[list[int]], order: Iterable[int],
                       remaining: set[int]) -> None:
        """§1.3: the source names a step of this plan (``R-STEP-INPUTS``), a transitive dependency (``R-BIND-REF``)."""
        ancestors = _ancestor_bitsets(deps, order, remaining)
        for i, target, source in self.bindings:
            j = index.get(source)
            if j is not None and j != i and (ancestors[i] >> j) & 1:
                continue
            path = f"/steps/{i}/inputs/{escape(target)}/step"
            if j is None:
                if _UUID(source) is None:
                    self.add(path, "R-STEP-INPUTS", "must be a step id: " + _MSG_UUID)
                else:
                    self.add(path, "R-STEP-INPUTS", f"{source} names no step of this plan")
            elif j == i:
                self.add(path, "R-BIND-REF", "a step cannot bind its own output")
            else:
                self.add(path, "R-BIND-REF", f"step {source} (/steps/{j}) is not a transitive dependency of this step")

    # pass 3: §1.1 payload size ----------------------------------------------------------------

    def check_payload_sizes(self) -> None:
        """Each payload's canonical form (§0.1) is at most 1 MiB."""
        if not self.payloads:
            return
        try:
            together = canonical_json([p for _, _, p in self.payloads])
            if len(together) * 4 <= MAX_PAYLOAD_BYTES or len(together.encode("utf-8")) <= MAX_PAYLOAD_BYTES:
                return
            for path, rule, payload in self.payloads:
                size = len(canonical_json(payload).encode("utf-8"))
                if size > MAX_PAYLOAD_BYTES:
                    self.add(path, rule, f"canonical form is {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
        except (ValueError, TypeError, RecursionError, UnicodeError):  # pragma: no cover - hygiene excludes these
            self.add("", "R-JSON", "a payload is not canonical JSON")


def _positive_int_error(value: Any) -> str | None:
    return _int_error(value, 1, MAX_SAFE_INT)


def _parallel_error(value: Any) -> str | None:
    return _int_error(value, 1, MAX_PARALLEL)


def _bool_error(value: Any) -> str | None:
    return None if type(value) is bool else f"must be a boolean, got {_type_name(value)}"


def _description_error(value: Any) -> str | None:
    if type(value) is not str:
        return f"must be a string, got {_type_name(value)}"
    if len(value) > MAX_DESCRIPTION:
        return f"must be at most {MAX_DESCRIPTION} characters, got {len(value)}"
    return None


# -- graph algorithms (iterative: a 1024-deep chain never recurses) ----------------------------


def _topological_order(deps: list[list[int]]) -> tuple[list[int], set[int]]:
    """Kahn's algorithm, dependencies first, ties in plan order. Returns (order, nodes left in or after a cycle)."""
    n = len(deps)
    pending = [len(d) for d in deps]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    order = [i for i in range(n) if not pending[i]]
    head = 0
    while head < len(order):
        for w in dependents[order[head]]:
            pending[w] -= 1
            if not pending[w]:
                order.append(w)
        head += 1
    remaining = {i for i in range(n) if pending[i]} if len(order) < n else set()
    return order, remaining


def _find_cycle(deps: list[list[int]], remaining: set[int]) -> list[int]:
    """One cycle among the ``remaining`` nodes, rotated to start at its lowest index (plan order).

    Every remaining node has a remaining dependency, so walking first-remaining-dependency edges
    from any remaining node must revisit a node: the walk from there on is a cycle.
    """
    node = min(remaining)
    position: dict[int, int] = {}
    walk: list[int] = []
    while node not in position:
        position[node] = len(walk)
        walk.append(node)
        node = next(d for d in deps[node] if d in remaining)
    cycle = walk[position[node]:]
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


def _ancestor_bitsets(deps: list[list[int]], order: Iterable[int], remaining: set[int]) -> list[int]:
    """Bit ``j`` of ``result[i]`` is set iff step ``j`` is a transitive dependency of step ``i``."""
    n = len(deps)
    ancestors = [0] * n
    for v in order:
        acc = 0
        for d in deps[v]:
            acc |= ancestors[d] | (1 << d)
        ancestors[v] = acc
    if remaining:  # in or downstream of a cycle: iterate to a fixpoint (reachability is still well defined)
        nodes = sorted(remaining)
        changed = True
        while changed:
            changed = False
            for v in nodes:
                acc = ancestors[v]
                for d in deps[v]:
                    acc |= ancestors[d] | (1 << d)
                if acc != ancestors[v]:
                    ancestors[v] = acc
                    changed = True
    return ancestors


# -- context (§2) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PlanFacts:
    """What context validation needs from the plan."""

    plan_id: str | None
    timeout_ms: int | None
    requirements: tuple[str, ...]


#: Nothing usable is known about the plan: the checks that need it are skipped.
_UNKNOWN_PLAN = _PlanFacts(None, None, ())


def _plan_facts(plan: Any) -> _PlanFacts:
    """Best effort, never raising: a :class:`Plan`, a plan document, or plan bytes/text."""
    if isinstance(plan, Plan):
        return _PlanFacts(plan.id, plan.timeout_ms, tuple(plan.context_requirements))
    doc = plan
    if isinstance(plan, (bytes, bytearray, memoryview, str)):
        try:
            doc = read_document(plan)
        except DocumentError:
            doc = None
    if type(doc) is not dict:
        return _UNKNOWN_PLAN
    plan_id = doc.get("id")
    timeout = doc.get("timeout_ms", DEFAULT_PLAN_TIMEOUT_MS)
    if _int_error(timeout, 1, MAX_TIMEOUT_MS):
        timeout = None
    reqs = doc.get("context_requirements")
    requirements = tuple(r for r in reqs if type(r) is str) if type(reqs) is list else ()
    return _PlanFacts(plan_id if type(plan_id) is str else None, timeout, tuple(dict.fromkeys(requirements)))


def _context_violations(doc: dict[str, Any], facts: _PlanFacts) -> list[Violation]:
    """§2 over a hygienic context document (unsorted)."""
    out: list[Violation] = []
    add = lambda path, rule, message: out.append(Violation(path, rule, message))  # noqa: E731

    for key in doc.keys() - _CONTEXT_FIELDS:
        add("/" + escape(key), "R-NO-EXTRA", f"unknown field \"{key}\" (not in §2)")

    value = doc.get("execution_id", _ABSENT)
    if value is _ABSENT:
        add("/execution_id", "R-CTX-ID", _missing("execution_id"))
    elif (error := _uuid_error(value)) is not None:
        add("/execution_id", "R-CTX-ID", error)

    value = doc.get("plan_id", _ABSENT)
    if value is _ABSENT:
        add("/plan_id", "R-CTX-PLAN", _missing("plan_id"))
    elif (error := _uuid_error(value)) is not None:
        add("/plan_id", "R-CTX-PLAN", error)
    elif facts.plan_id is not None and value != facts.plan_id:
        add("/plan_id", "R-CTX-PLAN", f"must equal the plan's id {facts.plan_id}")

    started = doc.get("started_at", _ABSENT)
    if started is _ABSENT:
        add("/started_at", "R-CTX-STARTED", _missing("started_at"))
        started = None
    elif (error := _int_error(started, 1, MAX_SAFE_INT)) is not None:
        add("/started_at", "R-CTX-STARTED", error)
        started = None

    deadline = doc.get("deadline_ms", _ABSENT)
    if deadline is _ABSENT:
        add("/deadline_ms", "R-CTX-DEADLINE", _missing("deadline_ms"))
    elif (error := _int_error(deadline, 1, MAX_SAFE_INT)) is not None:
        add("/deadline_ms", "R-CTX-DEADLINE", error)
    elif started is not None:
        if deadline <= started:
            add("/deadline_ms", "R-CTX-DEADLINE", f"must be after started_at ({started})")
        elif facts.timeout_ms is not None and deadline - started < facts.timeout_ms:
            add("/deadline_ms", "R-CTX-DEADLINE",
                f"must leave at least the plan's timeout_ms ({facts.timeout_ms}) after started_at; "
                f"it leaves {deadline - started}")

    env = doc.get("environment", _ABSENT)
    if env is _ABSENT:
        add("/environment", "R-CTX-ENV", _missing("environment"))
    elif type(env) is not dict:
        add("/environment", "R-CTX-ENV", f"must be an object, got {_type_name(env)}")
    else:
        for key in facts.requirements:
            if key not in env:
                add("/environment/" + escape(key), "R-CTX-REQS", f"required context key \"{key}\" is missing")

    principal = doc.get("principal", _ABSENT)
    if principal is not _ABSENT:
        _check_principal(principal, add)

    trigger = doc.get("trigger_type", _ABSENT)
    if trigger is not _ABSENT and (error := _enum_error(trigger, _TRIGGERS)) is not None:
        add("/trigger_type", "R-CTX-TRIGGER", error)
    return out


def _check_principal(principal: Any, add: Any) -> None:
    """§2/§6.1 ``R-CTX-PRINCIPAL``: exactly ``{"user_id": 1–200 chars, "token": 1–512 chars}``."""
    if type(principal) is not dict:
        add("/principal", "R-CTX-PRINCIPAL", f"must be an object, got {_type_name(principal)}")
        return
    for key in principal.keys() - _PRINCIPAL_FIELDS:
        add("/principal/" + escape(key), "R-NO-EXTRA", f"unknown field \"{key}\" (not in §6.1)")
    for field, limit in (("user_id", 200), ("token", 512)):
        value = principal.get(field, _ABSENT)
        if value is _ABSENT:
            add(f"/principal/{field}", "R-CTX-PRINCIPAL", _missing(field))
        elif type(value) is not str:
            add(f"/principal/{field}", "R-CTX-PRINCIPAL", f"must be a string, got {_type_name(value)}")
        elif not 1 <= len(value) <= limit:
            add(f"/principal/{field}", "R-CTX-PRINCIPAL", f"must be 1–{limit} characters, got {len(value)}")


# -- public API ------------------------------------------------------------------------------


def _read(data: Any) -> tuple[dict[str, Any] | None, list[Violation]]:
    """§0.6 gate: the document, or ``R-JSON`` at ``""`` alone."""
    try:
        return read_document(data, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH), []
    except DocumentError as exc:
        return None, [Violation("", "R-JSON", str(exc))]
    except Exception as exc:  # noqa: BLE001 - §1.4: validation never raises on any input
        return None, [Violation("", "R-JSON", f"unreadable document: {type(exc).__name__}")]


def _sorted(violations: list[Violation]) -> list[Violation]:
    violations.sort()
    return violations


def _plan_check(data: Any) -> tuple[dict[str, Any] | None, list[Violation]]:
    doc, violations = _read(data)
    if doc is None:
        return None, violations
    return doc, _sorted(_PlanCheck(doc).run())


def validate_plan(doc_or_bytes: Any) -> list[Violation]:
    """Every §0.6/§1 violation of a plan (raw JSON bytes/text, or a parsed document), sorted. Never raises."""
    return _plan_check(doc_or_bytes)[1]


def validate_context(context_doc: Any, plan: Any) -> list[Violation]:
    """Every §0.6/§2 violation of a context against ``plan`` (a :class:`Plan` or a plan document), sorted.

    ``R-CTX-REQS`` (a missing requirement key, CONTEXT_MISSING) is reported per key at
    ``/environment/<key>``. Never raises; an unusable plan only disables the checks that need it.
    """
    try:
        facts = _plan_facts(plan)
    except Exception:  # noqa: BLE001 - never raise
        facts = _UNKNOWN_PLAN
    doc, violations = _read(context_doc)
    if doc is None:
        return violations
    return _sorted(_context_violations(doc, facts))


def parse_plan(data: Any) -> Plan:
    """Strict-read, validate and build the frozen :class:`Plan`; raises :class:`PlanInvalid`.

    ``Plan.to_document()`` of the result equals the input document, so its digest is the plan digest (§0.3).
    """
    doc, violations = _plan_check(data)
    if violations or doc is None:
        raise PlanInvalid(violations)
    return Plan.model_validate(doc)


def parse_context(data: Any, plan: Any) -> ExecutionContext:
    """Strict-read and validate a context against ``plan``, then build :class:`ExecutionContext`.

    Raises :class:`ContextInvalid` (``.code`` CONTEXT_MISSING when only requirement keys are missing).
    """
    try:
        facts = _plan_facts(plan)
    except Exception:  # noqa: BLE001
        facts = _UNKNOWN_PLAN
    doc, violations = _read(data)
    if doc is not None:
        violations = _sorted(_context_violations(doc, facts))
    if violations or doc is None:
        env = doc.get("environment") if doc is not None else None
        missing = [k for k in facts.requirements if type(env) is dict and k not in env]
        raise ContextInvalid(violations, missing)
    return ExecutionContext.model_validate(doc)
