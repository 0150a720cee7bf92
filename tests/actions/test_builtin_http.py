"""``http.request`` (CONTRACT §12) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from ordinance.actions import ActionFailure, default_registry, payload_errors
from ordinance.actions.builtins.http import BODY_LIMIT

pytestmark = pytest.mark.timeout(60)


def test_s12_get_json(call: Callable[..., Any], http_base: str) -> None:
    out = call("http.request", {"method": "GET", "url": f"{http_base}/json"})
    assert out["status"] == 200
    assert out["json"] == {"ok": True, "n": 1}
    assert out["body"] == '{"ok": true, "n": 1}'
    assert out["headers"]["content-type"] == "application/json"
    assert all(k == k.lower() for k in out["headers"])


def test_s12_post_json_and_body_and_headers(call: Callable[..., Any], http_base: str) -> None:
    out = call("http.request", {"method": "POST", "url": f"{http_base}/echo", "json": {"a": [1, None]},
                                "headers": {"X-Test": "yes"}})
    assert out["json"]["method"] == "POST" and out["json"]["x_test"] == "yes"
    assert out["json"]["content_type"] == "application/json"
    assert out["json"]["body"].replace(" ", "") == '{"a":[1,null]}'
    out = call("http.request", {"method": "PUT", "url": f"{http_base}/echo", "body": "plain text",
                                "headers": {"Content-Type": "text/plain"}})
    assert out["json"]["body"] == "plain text" and out["json"]["method"] == "PUT"  # "+json" parses too
    out = call("http.request", {"method": "PATCH", "url": f"{http_base}/echo", "json": None})
    assert out["json"]["body"] == "null"


@pytest.mark.parametrize("method", ["DELETE", "OPTIONS", "HEAD"])
def test_s12_other_methods(call: Callable[..., Any], http_base: str, method: str) -> None:
    out = call("http.request", {"method": method, "url": f"{http_base}/json"})
    assert out["status"] == 200
    if method == "HEAD":
        assert out["body"] == "" and out["json"] is None


def test_s12_any_status_succeeds_without_expect_status(call: Callable[..., Any], http_base: str) -> None:
    out = call("http.request", {"method": "GET", "url": f"{http_base}/status/404"})
    assert out["status"] == 404 and out["body"] == "status body" and out["json"] is None


@pytest.mark.parametrize(("status", "recoverable"), [(404, False), (400, False), (503, True), (500, True),
                                                     (429, True)])
def test_s12_unexpected_status_fails_recoverable_only_for_5xx_and_429(call: Callable[..., Any], http_base: str,
                                                                      status: int, recoverable: bool) -> None:
    with pytest.raises(ActionFailure, match=f"unexpected status {status}") as info:
        call("http.request", {"method": "GET", "url": f"{http_base}/status/{status}", "expect_status": [200, 201]})
    assert info.value.recoverable is recoverable
    assert info.value.details["status"] == status


def test_s12_expected_status_single_or_list(call: Callable[..., Any], http_base: str) -> None:
    assert call("http.request", {"method": "GET", "url": f"{http_base}/status/201", "expect_status": 201})
    assert call("http.request", {"method": "GET", "url": f"{http_base}/status/204",
                                 "expect_status": [200, 204]})["status"] == 204


def test_s12_redirects_are_not_followed(call: Callable[..., Any], http_base: str) -> None:
    out = call("http.request", {"method": "GET", "url": f"{http_base}/redirect"})
    assert out["status"] == 302 and out["headers"]["location"] == "/json"


def test_s12_body_is_capped(call: Callable[..., Any], http_base: str) -> None:
    out = call("http.request", {"method": "GET", "url": f"{http_base}/big"})
    assert len(out["body"]) == BODY_LIMIT and out["body_truncated"] is True
    assert out["json"] is None  # a cut body is never parsed


def test_s12_invalid_json_response_gives_null_json(call: Callable[..., Any], http_base: str) -> None:
    out = call("http.request", {"method": "GET", "url": f"{http_base}/notjson"})
    assert out["json"] is None and out["body"] == "{not json"


def test_s12_connection_refused_is_a_recoverable_failure(call: Callable[..., Any]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(ActionFailure, match="transport error") as info:
            call("http.request", {"method": "GET", "url": f"http://127.0.0.1:{port}/"})
    assert info.value.recoverable is True


def test_s12_timeout_follows_the_attempt_deadline(call: Callable[..., Any], http_base: str) -> None:
    started = time.monotonic()
    with pytest.raises(ActionFailure, match="timed out") as info:
        call("http.request", {"method": "GET", "url": f"{http_base}/slow"},
             deadline_ms=int(time.time() * 1000) + 300)
    assert info.value.recoverable is True
    assert time.monotonic() - started < 2.5  # the server would have answered after 3 s


@pytest.mark.parametrize("payload", [
    {"method": "get", "url": "http://127.0.0.1/"},
    {"method": "TRACE", "url": "http://127.0.0.1/"},
    {"method": "GET", "url": "ftp://127.0.0.1/"},
    {"method": "GET", "url": "not a url"},
    {"method": "GET", "url": "http:///nohost"},
    {"method": "GET"},
    {"method": "POST", "url": "http://127.0.0.1/", "json": {}, "body": "x"},
    {"method": "GET", "url": "http://127.0.0.1/", "expect_status": True},
    {"method": "GET", "url": "http://127.0.0.1/", "expect_status": [200.0]},
    {"method": "GET", "url": "http://127.0.0.1/", "expect_status": 99},
    {"method": "GET", "url": "http://127.0.0.1/", "expect_status": []},
    {"method": "GET", "url": "http://127.0.0.1/", "headers": {"X": 1}},
    {"method": "GET", "url": "http://127.0.0.1/", "headers": {"Bad Name": "x"}},
    {"method": "GET", "url": "http://127.0.0.1/", "headers": {"X": "a\r\nInjected: 1"}},
    {"method": "GET", "url": "http://127.0.0.1/", "body": None},
    {"method": "GET", "url": "http://127.0.0.1/", "timeout_ms": 5},
])
def test_s5_0_s12_bad_static_payloads_are_invalid(payload: dict[str, Any]) -> None:
    spec = default_registry.get("http.request")
    assert spec is not None
    assert payload_errors(spec, payload)


def test_s12_json_null_is_a_valid_body() -> None:
    spec = default_registry.get("http.request")
    assert spec is not None
    assert payload_errors(spec, {"method": "POST", "url": "https://127.0.0.1/x", "json": None}) == []
