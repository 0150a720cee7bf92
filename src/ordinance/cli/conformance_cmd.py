"""``ordinance conformance``: run the clause suite and print COMPLIANT / VIOLATES per clause (CONTRACT §12)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import JsonOpt, StoreOpt, console, err_console, usage_error, write_json

__all__ = ["register"]

_STYLE = {"COMPLIANT": "bold green", "VIOLATES": "bold red", "NOT IMPLEMENTED": "bold yellow"}

_HELP = "\n\n".join([
    "Run the conformance suite: every clause of the contract (§0.1 … §12, and the named rules such as "
    "R-RULESET-ORDER) is exercised against the real engine and reported COMPLIANT, VIOLATES (with the failing "
    "check and why) or NOT IMPLEMENTED.",
    "The checks run in-process against a temporary SQLite store and a temporary workspace that are removed "
    "afterwards: your store (.ordinance/ or --store) is never opened; --store is accepted like on every command "
    "and not used.",
    "Exit codes: 0 nothing VIOLATES (NOT IMPLEMENTED does not fail); 1 at least one clause VIOLATES; 2 usage "
    "error (e.g. an unknown --clause).",
    'With --json, stdout holds only {"clauses": [{"clause", "title", "status", "checks": [{"name", "ok", '
    '"message", "seconds"}]}], "summary": {...}}; "ok" is null for a check of a clause that is not implemented.',
])


def register(app: typer.Typer) -> None:
    app.command("conformance", help=_HELP,
                short_help="Run the clause suite: COMPLIANT / VIOLATES / NOT IMPLEMENTED per clause.")(conformance)


def conformance(
    clause: Annotated[Optional[list[str]], typer.Option(
        "--clause", "-c", metavar="ID",
        help="Run only this clause (repeatable): §5.3, 5.3 or a rule id such as R-RULESET-ORDER.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every check under its clause, passed or not.")]
    = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the conformance suite (see ``--help``)."""
    del store  # the suite never touches a user's store
    from ..conformance import run_suite
    from ..conformance.registry import CLAUSE_IDS, normalize_clause

    if clause:
        unknown = [c for c in clause if normalize_clause(c) is None]
        if unknown:
            usage_error(f"unknown clause {', '.join(repr(u) for u in unknown)}; known: {' '.join(CLAUSE_IDS)}")

    progress = None
    if not json_out and err_console.is_terminal:
        status = err_console.status("running the clause suite…")
        status.start()

        def progress(res) -> None:  # type: ignore[no-untyped-def]
            status.update(f"running the clause suite… {res.clause}")
    else:
        status = None
    try:
        report = run_suite(clause or None, progress=progress)
    finally:
        if status is not None:
            status.stop()

    if json_out:
        write_json(report.to_dict())
        raise typer.Exit(0 if report.ok else 1)
    _print_table(report, verbose)
    raise typer.Exit(0 if report.ok else 1)


def _print_table(report, verbose: bool) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape
    from rich.table import Table

    table = Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("clause", no_wrap=True)
    table.add_column("title")
    table.add_column("status", no_wrap=True)
    table.add_column("checks", justify="right", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    for c in report.clauses:
        passed = sum(1 for x in c.checks if x.ok is True)
        table.add_row(escape(c.clause), escape(c.title), f"[{_STYLE[c.status]}]{c.status}[/]",
                      f"{passed}/{len(c.checks)}", f"{c.seconds:.2f}")
        if verbose:
            for x in c.checks:
                mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]–[/]"}[x.ok]
                note = f" ({escape(x.message)})" if x.ok is True and x.message else ""
                table.add_row("", f"{mark} [dim]{escape(x.name)}{note}[/]", "", "", f"[dim]{x.seconds:.2f}[/]")
    console.print(table)
    failing = [(c, x) for c in report.clauses for x in c.checks if x.ok is False]
    missing = [(c, x) for c in report.clauses for x in c.checks if x.ok is None]
    for heading, style, items in (("VIOLATES", "bold red", failing), ("NOT IMPLEMENTED", "bold yellow", missing)):
        if not items:
            continue
        console.print()
        console.print(f"[{style}]{heading}[/]")
        for c, x in items:
            console.print(f"  [bold]{escape(c.clause)}[/] {escape(x.name)}")
            console.print(f"      {escape(x.message)}", style="red" if x.ok is False else "yellow")
    s = report.summary()
    colour = "green" if report.ok else "red"
    console.print()
    console.print(
        f"[bold {colour}]{s['compliant']} compliant, {s['violates']} violate, {s['not_implemented']} not implemented[/]"
        f" — {s['clauses']} clause{'s' if s['clauses'] != 1 else ''}, {s['checks_passed']}/{s['checks']} checks passed"
        + (f", {s['checks_failed']} failed" if s["checks_failed"] else "")
        + f", {s['seconds']:.1f} s"
    )
