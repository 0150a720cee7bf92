"""``ordinance validate`` and ``ordinance schema`` (CONTRACT §12, §1.4, §10).

``validate`` exits 0 when the plan (and the context, with ``--context``) is valid, 1 when it is not,
2 on a usage error or an unreadable file. ``--json`` prints ``{"valid", "violations"}`` alone on
stdout; a context's violations carry ``"document": "context"`` and, with ``--dialect legacy``, the
converted plan's carry ``"document": "converted"`` (plan violations have exactly path/rule/message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape as markup_escape

from ..contract.canonical import digest
from ..contract.jsonio import DocumentError, load_document
from ..contract.pointer import MISSING, resolve
from .options import JsonOpt, StoreOpt, console, read_input, usage_error, write_json

if TYPE_CHECKING:
    from ..contract.validate import Violation

__all__ = ["register", "Dialect", "SchemaKind"]

EXCERPT_CHARS = 60


class Dialect(str, Enum):
    V1 = "v1"
    LEGACY = "legacy"


class SchemaKind(str, Enum):
    PLAN = "plan"
    CONTEXT = "context"
    RESULT = "result"


@dataclass(frozen=True)
class _Source:
    """One input document: its display name, raw bytes, and the parsed value when it is JSON."""

    name: str
    data: bytes

    def parsed(self) -> Any:
        try:
            return load_document(self.data)
        except DocumentError:
            return MISSING


@dataclass(frozen=True)
class _Finding:
    """A violation, the document it belongs to (``None`` = the plan as given) and that document."""

    violation: Violation
    document: str | None
    file: str
    doc: Any


def _read(path: str, what: str) -> _Source:
    """The bytes of ``path`` (``-`` = stdin), or exit 2 with one line."""
    return _Source("<stdin>" if path == "-" else path, read_input(path, what))


def _check(plan_src: _Source, context_src: _Source | None, dialect: Dialect) -> tuple[list[_Finding], Any]:
    """All findings, plan first, then the context's; and the (converted) plan document when usable."""
    # the validator builds the pydantic models on import: loaded here, so other commands start quickly
    from ..contract.legacy import convert_legacy, validate_legacy
    from ..contract.validate import validate_context, validate_plan

    findings: list[_Finding] = []
    plan_doc: Any = MISSING
    if dialect is Dialect.LEGACY:
        legacy = validate_legacy(plan_src.data)
        legacy_doc = plan_src.parsed() if legacy else MISSING
        findings += [_Finding(v, None, plan_src.name, legacy_doc) for v in legacy]
        if not legacy:
            plan_doc = convert_legacy(plan_src.data)
            findings += [_Finding(v, "converted", plan_src.name + " (converted)", plan_doc)
                         for v in validate_plan(plan_doc)]
    else:
        violations = validate_plan(plan_src.data)
        plan_doc = plan_src.parsed()
        findings += [_Finding(v, None, plan_src.name, plan_doc) for v in violations]
    if context_src is not None:
        context_doc = context_src.parsed()
        plan_for_context = plan_doc if plan_doc is not MISSING else None
        findings += [_Finding(v, "context", context_src.name, context_doc)
                     for v in validate_context(context_src.data, plan_for_context)]
    return findings, plan_doc


def _finding_json(finding: _Finding) -> dict[str, str]:
    entry = finding.violation.to_dict()
    if finding.document is not None:
        entry["document"] = finding.document
    return entry


def _excerpt(doc: Any, path: str) -> str | None:
    """The offending value as compact JSON, cut to about 60 characters; None for the root/unparsed."""
    if doc is MISSING or path == "":
        return None
    value = resolve(doc, path)
    if value is MISSING:
        return "(missing)"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _print_findings(findings: list[_Finding]) -> None:
    for finding in findings:
        v = finding.violation
        console.print(f"[bold red]error[/][bold][{markup_escape(v.rule)}][/]: {markup_escape(v.message)}")
        console.print(f"  [blue]-->[/] {markup_escape(finding.file)}{'#' + markup_escape(v.path) if v.path else ''}")
        excerpt = _excerpt(finding.doc, v.path)
        if excerpt is not None:
            console.print(f"   [blue]=[/] value: {markup_escape(excerpt)}")


def _summary(findings: list[_Finding]) -> str:
    """``3 violations in release.json`` (and ``, 1 violation in context.json``)."""
    counts: dict[str, int] = {}
    for finding in findings:
        name = finding.file.removesuffix(" (converted)")
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{count} violation{'s' if count != 1 else ''} in {name}" for name, count in counts.items())


def validate_command(
    plan: Annotated[str, typer.Argument(metavar="PLAN", show_default=False,
                                        help="Plan file (JSON) to validate; '-' reads standard input.")],
    context: Annotated[Optional[str], typer.Option(
        "--context", metavar="FILE", show_default=False,
        help="Also validate this execution-context file (§2) against the plan; '-' reads standard input.")] = None,
    dialect: Annotated[Dialect, typer.Option(
        "--dialect", case_sensitive=False,
        help="Input dialect: 'v1' (§1) or 'legacy' (§10; checked, converted to v1, then checked as v1).")] = Dialect.V1,
    json_output: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Validate a plan (and optionally a context) against the contract (§1.4, §12)."""
    del store  # accepted like every command's (§12); validation needs no store
    if plan == "-" and context == "-":
        usage_error("PLAN and --context cannot both read standard input")
    plan_src = _read(plan, "plan")
    context_src = _read(context, "context") if context is not None else None
    findings, plan_doc = _check(plan_src, context_src, dialect)
    valid = not findings
    if json_output:
        write_json({"valid": valid, "violations": [_finding_json(f) for f in findings]})
    elif valid:
        steps = len(plan_doc["steps"]) if isinstance(plan_doc, dict) else 0
        line = (f"[green]valid[/]: {markup_escape(plan_src.name)} — plan with {steps} step{'s' if steps != 1 else ''}, "
                f"{digest(plan_doc)}")
        if context_src is not None:
            line += f"; context {markup_escape(context_src.name)} is valid"
        console.print(line)
    else:
        _print_findings(findings)
        console.print(f"[bold red]{markup_escape(_summary(findings))}[/]")
    raise typer.Exit(0 if valid else 1)


def schema_command(
    kind: Annotated[SchemaKind, typer.Argument(
        metavar="plan|context|result", case_sensitive=False, show_default=False,
        help="Which document's schema to print: plan (§1), context (§2) or result (§3).")],
    store: StoreOpt = None,
) -> None:
    """Print the JSON Schema of a plan, context or result document (§12)."""
    del store
    from ..contract.schema import SCHEMAS

    write_json(SCHEMAS[kind.value]())


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``schema`` to the ``ordinance`` app."""
    app.command("validate", help=_VALIDATE_HELP, short_help="Validate a plan (and a context) against the contract.")(
        validate_command)
    app.command("schema", help=_SCHEMA_HELP, short_help="Print the JSON Schema of a plan, context or result.")(
        schema_command)


_VALIDATE_HELP = "\n\n".join([
    "Validate a plan (and optionally an execution context) against the contract and list every violation: "
    "file, JSON Pointer path, rule id, message and the offending value.",
    "Exit codes: 0 valid; 1 invalid; 2 usage error or unreadable file (missing, a directory, permission denied).",
    'With --json, stdout holds only {"valid": bool, "violations": [{"path", "rule", "message"}, ...]}; the '
    'violations of the --context file add "document": "context", and those of a converted legacy plan '
    '"document": "converted".',
])
_SCHEMA_HELP = "\n\n".join([
    "Print the JSON Schema (Draft 2020-12, self-contained: only #/$defs references) of a plan, execution context "
    "or plan result document on stdout.",
    "Exit codes: 0 printed; 2 usage error.",
])
