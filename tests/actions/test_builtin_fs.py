"""``fs.*`` built-in actions (CONTRACT §12) with their §7.1 probes and §7.3/§7.4 compensation, on real files."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ordinance.actions import ActionFailure, default_registry, payload_errors
from ordinance.actions.builtins import fs as fs_actions
from ordinance.contract.canonical import digest, digest_bytes
from ordinance.contract.models import CompensationType


def spec(name: str) -> Any:
    s = default_registry.get(name)
    assert s is not None
    return s


def probe(name: str, payload: dict[str, Any], ctx: Any) -> Any:
    return spec(name).probe(payload, ctx)


def compensate(name: str, payload: dict[str, Any], before: Any, ctx: Any) -> Any:
    return spec(name).compensate(payload, before, ctx)


# --------------------------------------------------------------------------- the actions

def test_s12_write_then_read_round_trip(call: Callable[..., Any], workspace: Path) -> None:
    out = call("fs.write", {"path": "notes.txt", "content": "héllo\n"})
    data = "héllo\n".encode()
    assert out == {"path": "notes.txt", "bytes": len(data), "digest": digest_bytes(data)}
    assert (workspace / "notes.txt").read_bytes() == data
    assert stat.S_IMODE(os.stat(workspace / "notes.txt").st_mode) == 0o644
    assert call("fs.read", {"path": "notes.txt"}) == {"path": "notes.txt", "content": "héllo\n",
                                                      "digest": digest_bytes(data)}


def test_s12_write_mode(call: Callable[..., Any], workspace: Path) -> None:
    call("fs.write", {"path": "run.sh", "content": "#!/bin/sh\n", "mode": 0o755})
    assert stat.S_IMODE(os.stat(workspace / "run.sh").st_mode) == 0o755


def test_s12_write_needs_the_parent_directory(call: Callable[..., Any], workspace: Path) -> None:
    with pytest.raises(ActionFailure, match="no such directory"):
        call("fs.write", {"path": "a/b.txt", "content": "x"})
    call("fs.mkdir", {"path": "a"})
    call("fs.write", {"path": "a/b.txt", "content": "x"})
    assert (workspace / "a" / "b.txt").read_text() == "x"


def test_s12_read_rejects_non_utf8(call: Callable[..., Any], workspace: Path) -> None:
    (workspace / "bin.dat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ActionFailure, match="not UTF-8") as info:
        call("fs.read", {"path": "bin.dat"})
    assert info.value.recoverable is False


def test_s12_delete_and_mkdir_report_what_changed(call: Callable[..., Any], workspace: Path) -> None:
    (workspace / "f.txt").write_text("x")
    assert call("fs.delete", {"path": "f.txt"}) == {"path": "f.txt", "deleted": True}
    assert call("fs.delete", {"path": "f.txt"}) == {"path": "f.txt", "deleted": False}
    assert call("fs.mkdir", {"path": "x/y"}) == {"path": "x/y", "created": True}
    assert call("fs.mkdir", {"path": "x/y"}) == {"path": "x/y", "created": False}
    assert call("fs.delete", {"path": "x/y"}) == {"path": "x/y", "deleted": True}
    (workspace / "file").write_text("x")
    with pytest.raises(ActionFailure, match="not a directory"):
        call("fs.mkdir", {"path": "file"})


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../x", ".git/config", ".ordinance/db",
                                  "dir\x00x"])
def test_s6_2_s12_writes_outside_or_to_protected_paths_are_denied(call: Callable[..., Any], workspace: Path,
                                                                  path: str) -> None:
    (workspace / ".git").mkdir()
    for name, payload in (("fs.write", {"path": path, "content": "x"}), ("fs.delete", {"path": path}),
                          ("fs.mkdir", {"path": path})):
        with pytest.raises(ActionFailure) as info:
            call(name, payload)
        assert info.value.recoverable is False
        assert info.value.details["error"] == "path_denied"
    assert not (workspace.parent / "escape.txt").exists()
    assert os.listdir(workspace / ".git") == []


def test_s6_2_s12_configured_protected_paths_come_from_the_context(call: Callable[..., Any], workspace: Path) -> None:
    with pytest.raises(ActionFailure, match="protected"):
        call("fs.write", {"path": "ordinance.toml", "content": "x"}, protected_paths=("ordinance.toml",))
    call("fs.write", {"path": "ordinance.toml", "content": "x"})  # not protected by default


def test_s6_2_s12_symlinks_are_rejected_unless_the_context_allows_them(call: Callable[..., Any],
                                                                       workspace: Path) -> None:
    (workspace / "real").mkdir()
    os.symlink("real", workspace / "link")
    with pytest.raises(ActionFailure, match="symlink"):
        call("fs.write", {"path": "link/x.txt", "content": "x"})
    call("fs.write", {"path": "link/x.txt", "content": "x"}, reject_symlinks=False)
    assert (workspace / "real" / "x.txt").read_text() == "x"


@pytest.mark.timeout(10)
def test_s6_2_s12_read_of_a_fifo_is_refused_without_blocking(call: Callable[..., Any], workspace: Path) -> None:
    os.mkfifo(workspace / "fifo")
    with pytest.raises(ActionFailure, match="fifo"):
        call("fs.read", {"path": "fifo"})


@pytest.mark.parametrize(("name", "payload"), [
    ("fs.write", {"path": "a"}),
    ("fs.write", {"path": "a", "content": 5}),
    ("fs.write", {"path": "a", "content": "x", "mode": "644"}),
    ("fs.write", {"path": "a", "content": "x", "mode": 420.0}),
    ("fs.write", {"path": "a", "content": "x", "mode": True}),
    ("fs.write", {"path": "a", "content": "x", "mode": 0o1000}),
    ("fs.write", {"path": "a", "content": "x", "mode": -1}),
    ("fs.write", {"path": "a", "content": "x", "mode": None}),
    ("fs.write", {"path": "a", "content": "x", "owner": "root"}),
    ("fs.read", {"path": 1}),
    ("fs.read", {}),
    ("fs.delete", {"path": ["a"]}),
    ("fs.mkdir", {"path": "a", "parents": True}),
])
def test_s5_0_s12_bad_static_payloads_are_invalid(name: str, payload: dict[str, Any]) -> None:
    assert payload_errors(spec(name), payload)


def test_s6_2_path_shape_is_left_to_the_envelope_not_the_schema() -> None:
    """A `..` path is a policy denial (POLICY_DENIED), not a schema error (INVALID_PAYLOAD)."""
    assert payload_errors(spec("fs.write"), {"path": "../x", "content": ""}) == []
    for name in ("fs.write", "fs.read", "fs.delete", "fs.mkdir"):
        assert spec(name).paths({"path": "../x", "content": ""}) == ["../x"]
    assert spec("fs.read").read_only and not spec("fs.write").read_only


# --------------------------------------------------------------------------- §7.1 state and §7.4 compensation

def test_s7_1_probe_digest_is_the_documented_state_object(make_ctx: Callable[..., Any], workspace: Path) -> None:
    ctx = make_ctx()
    assert probe("fs.write", {"path": "p.txt"}, ctx).digest == digest(
        {"path": "p.txt", "exists": False, "mode": None, "sha256": None})
    (workspace / "p.txt").write_bytes(b"abc")
    os.chmod(workspace / "p.txt", 0o600)
    snap = probe("fs.write", {"path": "p.txt"}, ctx)
    assert snap.digest == digest({"path": "p.txt", "exists": True, "mode": stat.S_IFREG | 0o600,
                                  "sha256": digest_bytes(b"abc").split(":")[1]})
    assert snap.restore["mode"] == 0o600


def test_s7_1_pre_and_post_state_differ_when_the_action_changes_something(call: Callable[..., Any],
                                                                          make_ctx: Callable[..., Any]) -> None:
    ctx = make_ctx()
    before = probe("fs.write", {"path": "s.txt"}, ctx)
    call("fs.write", {"path": "s.txt", "content": "1"})
    after = probe("fs.write", {"path": "s.txt"}, ctx)
    assert before.digest != after.digest
    assert probe("fs.write", {"path": "s.txt"}, ctx).digest == after.digest  # deterministic


@pytest.mark.parametrize("existed", [False, True])
def test_s7_4_write_compensation_restores_the_pre_state(call: Callable[..., Any], make_ctx: Callable[..., Any],
                                                        workspace: Path, existed: bool) -> None:
    ctx = make_ctx()
    payload = {"path": "target.txt", "content": "new content", "mode": 0o600}
    if existed:
        (workspace / "target.txt").write_bytes(b"old \x00 bytes")
        os.chmod(workspace / "target.txt", 0o640)
    assert spec("fs.write").compensation_type is CompensationType.FS_RESTORE
    before = probe("fs.write", payload, ctx)
    call("fs.write", payload)
    assert probe("fs.write", payload, ctx).digest != before.digest
    compensate("fs.write", payload, before, ctx)
    assert probe("fs.write", payload, ctx).digest == before.digest
    if existed:
        assert (workspace / "target.txt").read_bytes() == b"old \x00 bytes"
        assert stat.S_IMODE(os.stat(workspace / "target.txt").st_mode) == 0o640
    else:
        assert not (workspace / "target.txt").exists()


@pytest.mark.parametrize("kind", ["file", "missing", "empty_dir"])
def test_s7_4_delete_compensation_restores_the_pre_state(call: Callable[..., Any], make_ctx: Callable[..., Any],
                                                         workspace: Path, kind: str) -> None:
    ctx = make_ctx()
    payload = {"path": "gone"}
    if kind == "file":
        (workspace / "gone").write_bytes(b"precious")
        os.chmod(workspace / "gone", 0o700)
    elif kind == "empty_dir":
        (workspace / "gone").mkdir(mode=0o750)
        os.chmod(workspace / "gone", 0o750)
    assert spec("fs.delete").compensation_type is CompensationType.FS_RESTORE
    before = probe("fs.delete", payload, ctx)
    call("fs.delete", payload)
    compensate("fs.delete", payload, before, ctx)
    assert probe("fs.delete", payload, ctx).digest == before.digest
    if kind == "file":
        assert (workspace / "gone").read_bytes() == b"precious"


@pytest.mark.parametrize("existing", [None, "a", "a/b/c"])
def test_s7_4_mkdir_compensation_removes_only_what_it_created(call: Callable[..., Any],
                                                              make_ctx: Callable[..., Any], workspace: Path,
                                                              existing: str | None) -> None:
    ctx = make_ctx()
    payload = {"path": "a/b/c"}
    if existing:
        (workspace / existing).mkdir(parents=True)
    assert spec("fs.mkdir").compensation_type is CompensationType.FS_DELETE
    before = probe("fs.mkdir", payload, ctx)
    call("fs.mkdir", payload)
    compensate("fs.mkdir", payload, before, ctx)
    assert probe("fs.mkdir", payload, ctx).digest == before.digest
    assert (workspace / "a").exists() == (existing is not None)
    if existing == "a/b/c":
        assert (workspace / "a" / "b" / "c").is_dir()


def test_s7_4_mkdir_compensation_fails_on_a_directory_that_is_no_longer_empty(call: Callable[..., Any],
                                                                             make_ctx: Callable[..., Any],
                                                                             workspace: Path) -> None:
    ctx = make_ctx()
    before = probe("fs.mkdir", {"path": "made"}, ctx)
    call("fs.mkdir", {"path": "made"})
    (workspace / "made" / "later.txt").write_text("someone else's")
    with pytest.raises(ActionFailure):
        compensate("fs.mkdir", {"path": "made"}, before, ctx)
    assert (workspace / "made" / "later.txt").exists()
    assert probe("fs.mkdir", {"path": "made"}, ctx).digest != before.digest  # → compensation "failed"


def test_s7_4_content_too_large_to_keep_cannot_be_restored(call: Callable[..., Any], make_ctx: Callable[..., Any],
                                                           workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fs_actions, "RESTORE_LIMIT", 4)
    ctx = make_ctx()
    (workspace / "big.txt").write_bytes(b"more than four bytes")
    before = probe("fs.write", {"path": "big.txt"}, ctx)
    assert before.restore is None and before.digest  # still digested in full
    call("fs.write", {"path": "big.txt", "content": "x"})
    with pytest.raises(ActionFailure, match="cannot restore"):
        compensate("fs.write", {"path": "big.txt"}, before, ctx)
