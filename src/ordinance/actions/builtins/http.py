"""``http.request``: one HTTP request (CONTRACT §12).

Decisions where the contract is silent:

* Redirects are not followed (a 3xx is returned as is, ``location`` in its headers).
* The client ignores the engine's environment (``trust_env=False``: no proxy variables, no
  ``.netrc``), like ``shell.run`` does not leak it; the request is what the payload says.
* The timeout is whatever is left until the attempt's deadline (``ctx.deadline_ms``); the engine
  cancels the task at the deadline anyway.
* The response body is kept up to :data:`BODY_LIMIT` bytes (reading stops there;
  ``body_truncated: true`` is added) and decoded as text with the response charset (UTF-8 by
  default, replacement characters for bad bytes). ``json`` is the parsed body when the response
  says it is JSON (``application/json`` or ``+json``) and the whole body parses as strict JSON, else
  ``null``. ``headers`` has lowercase names; repeated headers are joined with ``", "``.
* Without ``expect_status`` every status is a success. With it, another status fails the step —
  recoverable for 5xx and 429, not for other statuses. Transport errors (connect, read, timeout)
  are recoverable; an unusable request (bad header, unsupported URL) is not.
* ``json`` and ``body`` are mutually exclusive; ``json: null`` sends the JSON body ``null``.
"""

from __future__ import annotations

import json as _json
import re
import time
from typing import Any, Literal

import httpx
from pydantic import Field, JsonValue, StrictInt, StrictStr, field_validator, model_validator

from ..registry import ActionContext, ActionFailure, default_registry
from ._common import Payload

__all__ = ["BODY_LIMIT", "HttpRequest", "request"]

#: Bytes of the response body kept in the output.
BODY_LIMIT = 1024 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TAIL = 2000


class HttpRequest(Payload):
    NULLABLE = frozenset({"json"})

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    url: StrictStr
    headers: dict[StrictStr, StrictStr] | None = None
    json_: JsonValue = Field(default=None, alias="json")
    body: StrictStr | None = None
    expect_status: StrictInt | list[StrictInt] | None = Field(default=None)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except Exception as exc:  # noqa: BLE001 - httpx.InvalidURL and friends
            raise ValueError(f"invalid URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise ValueError("URL scheme must be http or https")
        if not parsed.host:
            raise ValueError("URL has no host")
        return url

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        for name, value in (headers or {}).items():
            if not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if any(c in value for c in "\r\n\x00"):
                raise ValueError(f"header {name!r} contains CR, LF or NUL")
        return headers

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: int | list[int] | None) -> int | list[int] | None:
        codes = [value] if isinstance(value, int) else (value or [])
        if isinstance(value, list) and not value:
            raise ValueError("expect_status must not be an empty list")
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code")
        return value

    @model_validator(mode="after")
    def _json_or_body(self) -> HttpRequest:
        if "json_" in self.model_fields_set and self.body is not None:
            raise ValueError("'json' and 'body' are mutually exclusive")
        return self

    def expected(self) -> list[int] | None:
        if self.expect_status is None:
            return None
        return [self.expect_status] if isinstance(self.expect_status, int) else list(self.expect_status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(data: bytes) -> Any:
    try:
        return _json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


@default_registry.action("http.request", input=HttpRequest)
async def request(payload: HttpRequest, ctx: ActionContext) -> dict[str, Any]:
    """Send one HTTP request; output ``{"status", "headers", "body", "json"}``.

    Redirects are not followed; ``expect_status`` (an int or a list) turns other statuses into failures.
    """
    remaining_s = max(0.001, (ctx.deadline_ms - time.time() * 1000) / 1000)
    headers = dict(payload.headers or {})
    kwargs: dict[str, Any] = {"headers": headers}
    if "json_" in payload.model_fields_set:  # encoded here so that ``json: null`` sends ``null``
        kwargs["content"] = _json.dumps(payload.json_, separators=(",", ":"), ensure_ascii=False,
                                        allow_nan=False).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif payload.body is not None:
        kwargs["content"] = payload.body.encode("utf-8")
    try:
        async with httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(remaining_s), trust_env=False,
        ) as client:
            req = client.build_request(payload.method, payload.url, **kwargs)
            resp = await client.send(req, stream=True)
            try:
                body = bytearray()
                truncated = False
                async for chunk in resp.aiter_bytes():
                    room = BODY_LIMIT - len(body)
                    body += chunk[:room]
                    if len(chunk) > room:
                        truncated = True
                        break
            finally:
                await resp.aclose()
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise ActionFailure(f"http.request: unusable request: {exc}", recoverable=False) from None
    except httpx.TimeoutException as exc:
        raise ActionFailure(f"http.request: timed out: {type(exc).__name__}",
                            details={"error": type(exc).__name__}) from None
    except httpx.TransportError as exc:
        raise ActionFailure(f"http.request: transport error: {type(exc).__name__}: {exc}",
                            details={"error": type(exc).__name__}) from None

    try:
        text = bytes(body).decode(resp.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        text = bytes(body).decode("utf-8", errors="replace")
    out: dict[str, Any] = {
        "status": resp.status_code,
        "headers": dict(resp.headers.items()),
        "body": text,
        "json": _parse_json(bytes(body)) if body and not truncated and _is_json(
            resp.headers.get("content-type", "")) else None,
    }
    if truncated:
        out["body_truncated"] = True
    expected = payload.expected()
    if expected is not None and resp.status_code not in expected:
        status = resp.status_code
        raise ActionFailure(
            f"http.request: unexpected status {status} (expected {', '.join(map(str, expected))})",
            recoverable=status >= 500 or status == 429,
            details={"status": status, "expected": expected, "body_tail": text[-_TAIL:]},
        )
    return out
