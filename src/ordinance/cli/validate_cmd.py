"""``ordinance validate`` and ``ordinance schema`` (placeholder until the validator lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
