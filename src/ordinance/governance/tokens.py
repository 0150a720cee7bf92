"""Principals and tokens (CONTRACT §6.1). Only ``sha256:`` of a token is ever stored."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ..store.base import Store, TokenRow

__all__ = ["IssuedToken", "token_hash", "issue_token", "authenticate", "scope_allows"]


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the secret: shown once, never stored
    row: TokenRow


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    store: Store, *, user_id: str, roles: list[str], scopes: list[str], ttl_ms: int, now: int
) -> IssuedToken:
    """32 random bytes, URL-safe base64. The store keeps the hash, roles, scopes and expiry."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    th = token_hash(secret)
    row = TokenRow(
        token_id="tok_" + th[7:19], token_hash=th, user_id=user_id, roles=sorted(set(roles)),
        scopes=sorted(set(scopes)), created_at=now, expires_at=now + ttl_ms,
    )
    store.put_token(row)
    return IssuedToken(secret, row)


def authenticate(store: Store, *, user_id: str, token: str, now: int) -> tuple[TokenRow | None, str]:
    """(row, "ok") or (None, reason). The hash comparison is constant-time."""
    th = token_hash(token)
    row = store.token_by_hash(th)
    # Compare even when missing, so timing does not reveal whether a hash is known.
    stored = row.token_hash if row is not None else "sha256:" + "0" * 64
    if not hmac.compare_digest(stored.encode(), th.encode()) or row is None:
        return None, "unknown token"
    if not hmac.compare_digest(row.user_id.encode(), user_id.encode()):
        return None, "token belongs to another user"
    if row.revoked:
        return None, "token revoked"
    if row.expires_at <= now:
        return None, "token expired"
    return row, "ok"


def scope_allows(scopes: list[str], action: str) -> bool:
    """True if an action glob (``fs.*``, ``control.echo``, ``*``) matches the action."""
    return any(fnmatch.fnmatchcase(action, s) for s in scopes)
