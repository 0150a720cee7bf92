"""The strict legacy dialect (CONTRACT §10): validation and deterministic conversion to a v1 plan.

A legacy document::

    {"user_id", "token_hash", "trigger_type",
     "steps": [{"domain", "method", "parameters"}],
     "data_bindings"?: [{"source_step", "source_path", "target_step", "target_path"}]}

Decisions (where §10 is silent; also in ``docs/rules.md``):

* ``token_hash`` is how the token store keeps a token: ``"sha256:"`` + 64 lowercase hex digits.
* ``trigger_type`` is one of the §2 trigger types, so it can become the context's.
* ``domain`` is one action segment (``^[a-z][a-z0-9_]*$``) and ``domain + "." + method`` must be a
  valid §1.1 action, so the converted step's domain is the legacy domain.
* ``source_step``/``target_step`` are 0-based step indices; ``source_path``/``target_path`` are
  JSON Pointers (RFC 6901) — ``source_path`` may be ``""`` (the whole output), ``target_path`` may
  not; one binding per (target_step, target_path).
* Conversion: digest ``d`` = §0.2 digest of the legacy document. Ids are UUID-v4-formatted from
  ``sha256(d + ":plan")`` and ``sha256(d + ":step:<index>")`` (first 16 bytes, version nibble 4,
  variant bits 10). ``version`` 1, ``name`` ``"legacy plan <first 12 hex of d>"``, ``created_at`` 1,
  ``context_requirements`` ``["user_id"]`` (the environment must carry the user), each step depends
  on the previous one, ``action`` = domain.method, ``payload`` = parameters, bindings become the
  target step's ``inputs``, and ``metadata.legacy`` holds ``user_id``, ``token_hash``,
  ``trigger_type`` and ``digest`` (the principal, for the engine to check against the token store).
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from typing import Any

from .canonical import digest
from .jsonio import DocumentError, json_type as _type_name, read_document
from .pointer import POINTER_RE, escape
from .validate import MAX_STEPS, PlanInvalid, Violation

__all__ = ["validate_legacy", "convert_legacy", "legacy_uuid", "LEGACY_REQUIREMENTS"]

LEGACY_REQUIREMENTS = ("user_id",)
_TOP_FIELDS = frozenset({"user_id", "token_hash", "trigger_type", "steps", "data_bindings"})
_STEP_FIELDS = frozenset({"domain", "method", "parameters"})
_BINDING_FIELDS = frozenset({"source_step", "source_path", "target_step", "target_path"})
_TRIGGERS = ("manual", "api", "schedule", "event", "nested")
_TOKEN_HASH = re.compile(r"sha256:[0-9a-f]{64}").fullmatch
_DOMAIN = re.compile(r"[a-z][a-z0-9_]*").fullmatch
_METHOD = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*").fullmatch
_ABSENT: Any = object()


def _check_top(doc: dict[str, Any], add: Any) -> None:
    for key in doc.keys() - _TOP_FIELDS:
        add("/" + escape(key), "R-LEGACY-EXTRA", f"unknown field \"{key}\" (not in §10)")
    user = doc.get("user_id", _ABSENT)
    if user is _ABSENT:
        add("/user_id", "R-LEGACY-USER", "required field \"user_id\" is missing")
    elif type(user) is not str:
        add("/user_id", "R-LEGACY-USER", f"must be a string, got {_type_name(user)}")
    elif not 1 <= len(user) <= 200:
        add("/user_id", "R-LEGACY-USER", f"must be 1–200 characters, got {len(user)}")
    token = doc.get("token_hash", _ABSENT)
    if token is _ABSENT:
        add("/token_hash", "R-LEGACY-TOKEN", "required field \"token_hash\" is missing")
    elif type(token) is not str:
        add("/token_hash", "R-LEGACY-TOKEN", f"must be a string, got {_type_name(token)}")
    elif _TOKEN_HASH(token) is None:
        add("/token_hash", "R-LEGACY-TOKEN", "must be \"sha256:\" followed by 64 lowercase hex digits")
    trigger = doc.get("trigger_type", _ABSENT)
    if trigger is _ABSENT:
        add("/trigger_type", "R-LEGACY-TRIGGER", "required field \"trigger_type\" is missing")
    elif type(trigger) is not str:
        add("/trigger_type", "R-LEGACY-TRIGGER", f"must be a string, got {_type_name(trigger)}")
    elif trigger not in _TRIGGERS:
        add("/trigger_type", "R-LEGACY-TRIGGER", "must be one of " + ", ".join(f'"{t}"' for t in _TRIGGERS))


def _check_steps(steps: Any, add: Any) -> int | None:
    """The steps array; returns the step count when it is an array."""
    if steps is _ABSENT:
        add("/steps", "R-LEGACY-STEPS", "required field \"steps\" is missing")
        return None
    if type(steps) is not list:
        add("/steps", "R-LEGACY-STEPS", f"must be an array, got {_type_name(steps)}")
        return None
    if not 1 <= len(steps) <= MAX_STEPS:
        add("/steps", "R-LEGACY-STEPS", f"must hold 1–{MAX_STEPS} steps, got {len(steps)}")
    for i, step in enumerate(steps):
        base = f"/steps/{i}"
        if type(step) is not dict:
            add(base, "R-LEGACY-STEPS", f"a step must be an object, got {_type_name(step)}")
            continue
        for key in step.keys() - _STEP_FIELDS:
            add(f"{base}/{escape(key)}", "R-LEGACY-EXTRA", f"unknown field \"{key}\" (a step is exactly "
                                                             "domain, method, parameters)")
        domain, method = step.get("domain", _ABSENT), step.get("method", _ABSENT)
        for field, value, check in (("domain", domain, _DOMAIN), ("method", method, _METHOD)):
            if value is _ABSENT:
                add(f"{base}/{field}", "R-LEGACY-STEP", f"required field \"{field}\" is missing")
            elif type(value) is not str:
                add(f"{base}/{field}", "R-LEGACY-STEP", f"must be a string, got {_type_name(value)}")
            elif check(value) is None:
                add(f"{base}/{field}", "R-LEGACY-ACTION",
                    f"\"{domain}.{method}\" is not a valid action: {field} must match "
                    + ("^[a-z][a-z0-9_]*$" if field == "domain" else "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$"))
        params = step.get("parameters", _ABSENT)
        if params is _ABSENT:
            add(f"{base}/parameters", "R-LEGACY-STEP", "required field \"parameters\" is missing")
        elif type(params) is not dict:
            add(f"{base}/parameters", "R-LEGACY-STEP", f"must be an object, got {_type_name(params)}")
    return len(steps)


def _check_bindings(bindings: Any, n_steps: int | None, add: Any) -> None:
    if bindings is _ABSENT:
        return
    if type(bindings) is not list:
        add("/data_bindings", "R-LEGACY-BINDINGS", f"must be an array, got {_type_name(bindings)}")
        return
    targets: dict[tuple[int, str], int] = {}
    for k, binding in enumerate(bindings):
        base = f"/data_bindings/{k}"
        if type(binding) is not dict:
            add(base, "R-LEGACY-BINDINGS", f"a binding must be an object, got {_type_name(binding)}")
            continue
        for key in binding.keys() - _BINDING_FIELDS:
            add(f"{base}/{escape(key)}", "R-LEGACY-EXTRA", f"unknown field \"{key}\" (not in §10)")
        indices: dict[str, int] = {}
        for field in ("source_step", "target_step"):
            value = binding.get(field, _ABSENT)
            if value is _ABSENT:
                add(f"{base}/{field}", "R-LEGACY-BINDINGS", f"required field \"{field}\" is missing")
            elif type(value) is not int:
                add(f"{base}/{field}", "R-LEGACY-BINDINGS", f"must be a step index (integer), got {_type_name(value)}")
            elif value < 0 or (n_steps is not None and value >= n_steps):
                add(f"{base}/{field}", "R-LEGACY-BINDINGS", f"step index {value} is out of range")
            else:
                indices[field] = value
        paths: dict[str, str] = {}
        for field, allow_root in (("source_path", True), ("target_path", False)):
            value = binding.get(field, _ABSENT)
            if value is _ABSENT:
                add(f"{base}/{field}", "R-LEGACY-BINDINGS", f"required field \"{field}\" is missing")
            elif type(value) is not str:
                add(f"{base}/{field}", "R-LEGACY-BINDINGS", f"must be a string, got {_type_name(value)}")
            elif (not value and not allow_root) or POINTER_RE.fullmatch(value) is None:
                add(f"{base}/{field}", "R-LEGACY-BINDINGS",
                    "must be a JSON Pointer (RFC 6901)" + ("" if allow_root else ", not empty"))
            else:
                paths[field] = value
        if len(indices) == 2 and indices["source_step"] >= indices["target_step"]:
            add(f"{base}/source_step", "R-LEGACY-BIND-ORDER",
                f"source_step ({indices['source_step']}) must be before target_step ({indices['target_step']})")
        if "target_step" in indices and "target_path" in paths:
            key = (indices["target_step"], paths["target_path"])
            if key in targets:
                add(f"{base}/target_path", "R-LEGACY-BINDINGS",
                    f"step {key[0]} {key[1]} is already bound by /data_bindings/{targets[key]}")
            else:
                targets[key] = k


def validate_legacy(doc: Any) -> list[Violation]:
    """Every §10 violation of a legacy document (raw bytes/text or parsed), sorted; never raises.

    Only the dialect's own rules: run :func:`ordinance.contract.validate.validate_plan` on
    :func:`convert_legacy`'s output for the v1 rules (payload size, ...).
    """
    try:
        parsed = read_document(doc)
    except DocumentError as exc:
        return [Violation("", "R-JSON", str(exc))]
    except Exception as exc:  # noqa: BLE001 - validation never raises
        return [Violation("", "R-JSON", f"unreadable document: {type(exc).__name__}")]
    out: list[Violation] = []

    def add(path: str, rule: str, message: str) -> None:
        out.append(Violation(path, rule, message))

    _check_top(parsed, add)
    n_steps = _check_steps(parsed.get("steps", _ABSENT), add)
    _check_bindings(parsed.get("data_bindings", _ABSENT), n_steps, add)
    out.sort()
    return out


def legacy_uuid(doc_digest: str, label: str) -> str:
    """A UUID-v4-formatted id from ``sha256(doc_digest + ":" + label)`` (version 4, variant 10xx)."""
    raw = bytearray(hashlib.sha256(f"{doc_digest}:{label}".encode("utf-8")).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def convert_legacy(doc: Any) -> dict[str, Any]:
    """The v1 plan document for a valid legacy document; deterministic (same input, same digest).

    Raises :class:`~ordinance.contract.validate.PlanInvalid` with the legacy violations when
    :func:`validate_legacy` finds any.
    """
    violations = validate_legacy(doc)
    if violations:
        raise PlanInvalid(violations)
    parsed = read_document(doc)
    doc_digest = digest(parsed)
    step_ids = [legacy_uuid(doc_digest, f"step:{i}") for i in range(len(parsed["steps"]))]
    inputs: dict[int, dict[str, dict[str, str]]] = {}
    for binding in parsed.get("data_bindings", []):
        inputs.setdefault(binding["target_step"], {})[binding["target_path"]] = {
            "step": step_ids[binding["source_step"]], "pointer": binding["source_path"],
        }
    steps: list[dict[str, Any]] = []
    for i, legacy_step in enumerate(parsed["steps"]):
        step: dict[str, Any] = {
            "id": step_ids[i],
            "action": f"{legacy_step['domain']}.{legacy_step['method']}",
            "payload": copy.deepcopy(legacy_step["parameters"]),
        }
        if i:
            step["depends_on"] = [step_ids[i - 1]]
        if i in inputs:
            step["inputs"] = inputs[i]
        steps.append(step)
    return {
        "id": legacy_uuid(doc_digest, "plan"),
        "version": 1,
        "name": f"legacy plan {doc_digest[len('sha256:'):][:12]}",
        "created_at": 1,
        "steps": steps,
        "context_requirements": list(LEGACY_REQUIREMENTS),
        "metadata": {"legacy": {
            "user_id": parsed["user_id"],
            "token_hash": parsed["token_hash"],
            "trigger_type": parsed["trigger_type"],
            "digest": doc_digest,
        }},
    }
