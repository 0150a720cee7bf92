"""What a person sees: status styles and result summaries shared by the commands."""

from __future__ import annotations

from typing import Any

__all__ = ["EXIT_CODES", "STATUS_STYLE", "print_summary"]

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
