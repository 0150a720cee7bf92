"""What a person sees: status styles and result summaries shared by the commands."""

from __future__ import annotations

from typing import Any

__all__ = ["EXIT_CODES", "STATUS_STYLE", "print_summary", "print_result"]

#: §12: exit 0 success, 3 partial, 1 failure (2 is usage).
EXIT_CODES = {"success": 0, "partial": 3, "failure": 1}


STATUS_STYLE = {
    "pending": ("·", "dim"), "running": ("▶", "cyan"), "succeeded": ("✔", "green"), "failed": ("✘", "red"),
    "skipped": ("↷", "yellow"), "not_run": ("○", "dim"), "cancelled": ("■", "magenta"), "compensated": ("↺", "blue"),
    "retrying": ("↻", "yellow"), "timed_out": ("⏱", "red"),
}



def print_summary(result: Any, out) -> None:
    status = result.status.value
    style = {"success": "bold green", "partial": "bold yellow", "failure": "bold red"}[status]
    counts: dict[str, int] = {}
    for sr in result.step_results:
        counts[sr.status.value] = counts.get(sr.status.value, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out.print(f"[{style}]{status.upper()}[/] in {result.duration_ms} ms — {parts or 'no steps'}")
    if result.error is not None:
        e = result.error
        where = f" (step {e.step_id})" if e.step_id else ""
        out.print(f"[red]{e.error_code.value}[/]{where}: {e.message}")
        for v in (e.details.get("violations") or [])[:20]:
            out.print(f"  {v.get('path') or '(root)'}  [bold]{v.get('rule')}[/]  {v.get('message')}")
        comp = e.details.get("compensation")
        if comp:
            out.print(f"  compensation: {len(comp.get('verified', []))} verified, {len(comp.get('failed', []))} failed")
    out.print(f"[dim]execution {result.execution_id} · run {result.run_id[:23]}… · `ordinance show {result.execution_id}`[/]")


def print_result(doc: dict[str, Any], out) -> None:
    """A stored PlanResult for a person: one row per step, then the summary (``show``, ``wait``)."""
    from rich.table import Table

    from ..contract.models import PlanResult

    res = PlanResult.model_validate(doc)
    table = Table(title=f"plan {res.plan_id} v{res.plan_version}", box=None, header_style="bold")
    for col in ("#", "step", "status", "attempts", "duration", "error"):
        table.add_column(col)
    for i, sr in enumerate(res.step_results, 1):
        icon, style = STATUS_STYLE.get(sr.status.value, ("?", ""))
        err = f"{sr.error.error_code.value}: {sr.error.message}" if sr.error else ""
        table.add_row(str(i), sr.step_id, f"[{style}]{icon} {sr.status.value}[/]", str(sr.attempts),
                      f"{sr.duration_ms} ms" if sr.duration_ms is not None else "", err[:80])
    out.print(table)
    print_summary(res, out)
