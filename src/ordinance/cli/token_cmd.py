"""``ordinance token issue|revoke|list`` (CONTRACT §6.1, §12). The secret is shown once; only its hash is kept."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from .options import (
    JsonOpt,
    StoreOpt,
    console,
    err_console,
    open_store_or_exit,
    usage_error,
    write_json,
)

__all__ = ["register"]

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _parse_ttl(text: str) -> int:
    """'90s', '15m', '12h', '30d' → milliseconds."""
    unit = text[-1:]
    if unit not in _UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        usage_error(f"--ttl takes a positive number with a unit s, m, h or d (e.g. 12h), got {text!r}")
    return int(text[:-1]) * _UNITS[unit]


def _row_doc(r) -> dict:
    return {"token_id": r.token_id, "user_id": r.user_id, "roles": r.roles, "scopes": r.scopes,
            "created_at": r.created_at, "expires_at": r.expires_at, "revoked": r.revoked}


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="Issue, revoke and list principal tokens (§6.1). Only sha256 of a token is stored.",
                         no_args_is_help=True)
    app.add_typer(tokens, name="token")

    @tokens.command("issue")
    def issue(
        user: Annotated[str, typer.Option("--user", help="The principal's user id.")],
        scope: Annotated[list[str], typer.Option("--scope", help="Action glob the token may run, e.g. 'fs.*' (repeatable).")],
        role: Annotated[Optional[list[str]], typer.Option("--role", help="Role of the principal (repeatable).")] = None,
        ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: a number with s, m, h or d.")] = "12h",
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Issue a token: 32 random bytes, URL-safe base64, printed once."""
        from ..governance.tokens import issue_token

        if not user.strip():
            usage_error("--user must not be empty")
        st = open_store_or_exit(store)
        issued = issue_token(st, user_id=user, roles=list(role or []), scopes=list(scope), ttl_ms=_parse_ttl(ttl),
                             now=int(time.time() * 1000))
        if json_out:
            write_json({"token": issued.token, **_row_doc(issued.row)})
            return
        console.print(f"token for [bold]{user}[/] ({issued.row.token_id}), shown once — store it now:")
        console.print(issued.token, markup=False)
        expires = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(issued.row.expires_at / 1000))
        err_console.print(f"scopes {', '.join(issued.row.scopes)}; roles {', '.join(issued.row.roles) or '-'}; "
                          f"expires {expires}")

    @tokens.command("revoke")
    def revoke(
        token_id: Annotated[str, typer.Argument(help="The token id shown by `token issue` / `token list`.")],
        store: StoreOpt = None,
    ) -> None:
        """Revoke a token; runs that present it are denied from now on. Exit 1 if no such token."""
        st = open_store_or_exit(store, create=False)
        if not st.revoke_token(token_id):
            err_console.print(f"[red]error:[/] no token {token_id}")
            raise typer.Exit(1)
        console.print(f"revoked {token_id}")

    @tokens.command("list")
    def list_(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
        """List tokens (never their secrets)."""
        st = open_store_or_exit(store, create=False)
        rows = st.list_tokens()
        if json_out:
            write_json([_row_doc(r) for r in rows])
            return
        if not rows:
            console.print("no tokens")
            return
        from rich.table import Table

        now = int(time.time() * 1000)
        table = Table(box=None, header_style="bold")
        for col in ("token", "user", "scopes", "roles", "state"):
            table.add_column(col)
        for r in rows:
            state = "revoked" if r.revoked else ("expired" if r.expires_at <= now else "active")
            table.add_row(r.token_id, r.user_id, ", ".join(r.scopes), ", ".join(r.roles) or "-", state)
        console.print(table)
