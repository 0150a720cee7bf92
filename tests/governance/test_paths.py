"""Workspace-confined file access (CONTRACT §0.5, §6.2) on real files, symlinks, FIFOs and sockets."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordinance.governance.paths import (
    FileTooLarge,
    PathDenied,
    WorkspaceFS,
    check_relpath,
    match_glob,
)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "f.txt").write_bytes(b"inside")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_bytes(b"secret")
    return out


# --------------------------------------------------------------------------- §0.5 path shape

@pytest.mark.parametrize("path", ["a", "a/b", "a.b/c-d_e", ".hidden/x", "a/b/c/d/e.txt", "..x", "x..", "a/.b"])
def test_s0_5_valid_relative_paths_are_accepted(path: str) -> None:
    assert check_relpath(path) == path


@pytest.mark.parametrize(("path", "reason"), [
    ("", "empty"), ("/etc/passwd", "absolute"), ("../x", ".."), ("a/../../x", ".."), ("a/..", ".."),
    ("./a", "'.'"), ("a/./b", "'.'"), ("a//b", "empty path segment"), ("a/", "empty path segment"),
    ("a\x00b", "NUL"), ("a\\b", "backslash"), ("..\\x", "backslash"),
])
def test_s0_5_s6_2_bad_paths_are_denied_with_a_reason(path: str, reason: str) -> None:
    with pytest.raises(PathDenied) as info:
        check_relpath(path)
    assert reason in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_s0_5_non_string_path_is_denied() -> None:
    with pytest.raises(PathDenied):
        check_relpath(b"a")  # type: ignore[arg-type]


_segments = st.sampled_from(["a", "b", ".", "..", "", "c.txt", "\\", "x\x00"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_segments, min_size=1, max_size=6), st.booleans())
def test_s0_5_s6_2_accepted_paths_never_leave_the_root_lexically(segs: list[str], absolute: bool) -> None:
    path = ("/" if absolute else "") + "/".join(segs)
    try:
        check_relpath(path)
    except PathDenied:
        return
    root = "/r/ws"
    resolved = os.path.normpath(os.path.join(root, path))
    assert resolved.startswith(root + "/")
    assert not any(s in ("", ".", "..") for s in path.split("/"))


# --------------------------------------------------------------------------- basic operations

def test_s6_2_write_read_round_trip_is_atomic_and_leaves_no_temp_files(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    fs.write_bytes("d/new.txt", b"hello")
    assert fs.read_bytes("d/new.txt") == b"hello"
    fs.write_bytes("d/new.txt", b"replaced")
    assert (ws / "d" / "new.txt").read_bytes() == b"replaced"
    assert sorted(os.listdir(ws / "d")) == ["f.txt", "new.txt", "sub"]


def test_s6_2_write_modes_new_file_default_explicit_and_kept_on_replace(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    fs.write_bytes("a.txt", b"1")
    assert stat.S_IMODE(os.stat(ws / "a.txt").st_mode) == 0o644
    fs.write_bytes("b.sh", b"1", mode=0o755)
    assert stat.S_IMODE(os.stat(ws / "b.sh").st_mode) == 0o755
    fs.write_bytes("b.sh", b"2")
    assert stat.S_IMODE(os.stat(ws / "b.sh").st_mode) == 0o755


def test_s6_2_write_needs_an_existing_parent(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    with pytest.raises(FileNotFoundError):
        fs.write_bytes("nope/x.txt", b"1")
    assert not (ws / "nope").exists()


def test_s6_2_write_through_a_hard_link_never_changes_the_outside_file(ws: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", ws / "hard.txt")
    WorkspaceFS(str(ws)).write_bytes("hard.txt", b"overwritten")
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert (ws / "hard.txt").read_bytes() == b"overwritten"


def test_s6_2_delete_file_empty_dir_missing_and_non_empty_dir(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    assert fs.delete("d/f.txt") is True
    assert fs.delete("d/f.txt") is False
    assert fs.delete("missing/x") is False
    assert fs.delete("d/sub") is True
    (ws / "d" / "x").write_bytes(b"")
    with pytest.raises(OSError):
        fs.delete("d")
    assert (ws / "d" / "x").exists()


def test_s6_2_mkdir_creates_parents_with_exact_mode_and_reports_created(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    old = os.umask(0o077)
    try:
        assert fs.mkdir("n1/n2/n3") is True
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(ws / "n1" / "n2" / "n3").st_mode) == 0o755
    assert fs.mkdir("n1/n2/n3") is False
    with pytest.raises(FileExistsError):
        fs.mkdir("d/f.txt")
    with pytest.raises(NotADirectoryError):
        fs.mkdir("d/f.txt/x")
    with pytest.raises(FileNotFoundError):
        fs.mkdir("p1/p2", parents=False)


def test_s6_2_stat_exists_and_snapshot(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    exists, mode, size = fs.stat("d/f.txt")
    assert exists and stat.S_ISREG(mode or 0) and size == 6
    assert fs.stat("d/sub").exists and stat.S_ISDIR(fs.stat("d/sub").mode or 0)
    assert fs.stat("d/missing") == (False, None, None)
    assert fs.exists("missing/deeper/x") is False
    assert fs.exists("d/f.txt/below") is False
    snap = fs.snapshot("d/f.txt", keep_bytes=100)
    assert snap.content == b"inside" and snap.is_file and len(snap.sha256 or "") == 64
    assert fs.snapshot("d/f.txt", keep_bytes=3).content is None
    assert fs.snapshot("d/sub").sha256 is None and fs.snapshot("d/sub").is_dir


def test_s6_2_read_size_cap(ws: Path) -> None:
    fs = WorkspaceFS(str(ws), max_read_bytes=4)
    with pytest.raises(FileTooLarge):
        fs.read_bytes("d/f.txt")


def test_s6_2_reading_a_directory_is_an_error(ws: Path) -> None:
    with pytest.raises(IsADirectoryError):
        WorkspaceFS(str(ws)).read_bytes("d")


# --------------------------------------------------------------------------- escapes

@pytest.mark.parametrize("path", ["../outside/secret.txt", "/etc/passwd", "d/../../x", "d/\x00", "d\\f.txt"])
def test_s6_2_escaping_paths_are_denied_for_every_operation(ws: Path, path: str) -> None:
    fs = WorkspaceFS(str(ws))
    for op in (lambda: fs.read_bytes(path), lambda: fs.write_bytes(path, b"x"), lambda: fs.delete(path),
               lambda: fs.mkdir(path), lambda: fs.stat(path), lambda: fs.snapshot(path)):
        with pytest.raises(PathDenied):
            op()


@pytest.mark.parametrize("target_kind", ["outside", "inside"])
def test_s6_2_symlink_in_an_intermediate_component_is_denied(ws: Path, outside: Path, target_kind: str) -> None:
    target = outside if target_kind == "outside" else ws / "d"
    os.symlink(target, ws / "link")
    fs = WorkspaceFS(str(ws))
    for op in (lambda: fs.read_bytes("link/secret.txt"), lambda: fs.write_bytes("link/new.txt", b"x"),
               lambda: fs.delete("link/secret.txt"), lambda: fs.mkdir("link/newdir"),
               lambda: fs.stat("link/secret.txt"), lambda: fs.open_directory("link")):
        with pytest.raises(PathDenied, match="symlink"):
            op()
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_s6_2_symlink_deep_in_the_path_is_denied(ws: Path, outside: Path) -> None:
    os.symlink(outside, ws / "d" / "sub" / "deep")
    with pytest.raises(PathDenied, match="d/sub/deep"):
        WorkspaceFS(str(ws)).write_bytes("d/sub/deep/x.txt", b"x")
    assert not (outside / "x.txt").exists()


@pytest.mark.parametrize("target_kind", ["outside", "inside"])
def test_s6_2_symlink_as_final_component_is_denied(ws: Path, outside: Path, target_kind: str) -> None:
    target = outside / "secret.txt" if target_kind == "outside" else ws / "d" / "f.txt"
    os.symlink(target, ws / "final")
    fs = WorkspaceFS(str(ws))
    for op in (lambda: fs.read_bytes("final"), lambda: fs.write_bytes("final", b"x"), lambda: fs.delete("final"),
               lambda: fs.stat("final"), lambda: fs.snapshot("final"), lambda: fs.mkdir("final")):
        with pytest.raises(PathDenied, match="symlink"):
            op()
    assert os.path.islink(ws / "final")
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_s6_2_followed_symlinks_stay_inside_the_workspace(ws: Path, outside: Path) -> None:
    """With reject_symlinks off, links are followed only to places inside the workspace."""
    os.symlink("d", ws / "rel")
    os.symlink(ws / "d", ws / "abs")
    os.symlink(outside, ws / "out")
    os.symlink("../../outside", ws / "d" / "climb")
    os.symlink("f.txt", ws / "d" / "alias")
    fs = WorkspaceFS(str(ws), reject_symlinks=False)
    assert fs.read_bytes("rel/f.txt") == b"inside"
    assert fs.read_bytes("abs/f.txt") == b"inside"
    assert fs.read_bytes("d/alias") == b"inside"
    fs.write_bytes("rel/w.txt", b"w")
    assert (ws / "d" / "w.txt").read_bytes() == b"w"
    assert fs.mkdir("rel/made") is True and (ws / "d" / "made").is_dir()
    for path in ("out/secret.txt", "d/climb/secret.txt"):
        with pytest.raises(PathDenied, match="outside|escapes"):
            fs.read_bytes(path)
        with pytest.raises(PathDenied):
            fs.write_bytes(path, b"x")
    assert fs.delete("d/alias") is True  # the link itself, never its target
    assert (ws / "d" / "f.txt").read_bytes() == b"inside"
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_s6_2_symlink_loop_is_denied(ws: Path) -> None:
    os.symlink("loop2", ws / "loop1")
    os.symlink("loop1", ws / "loop2")
    with pytest.raises(PathDenied, match="too many"):
        WorkspaceFS(str(ws), reject_symlinks=False).read_bytes("loop1/x")


def test_s6_2_protected_path_reached_through_a_followed_symlink_is_denied(ws: Path) -> None:
    (ws / ".git").mkdir()
    os.symlink(".git", ws / "sneaky")
    fs = WorkspaceFS(str(ws), reject_symlinks=False)
    with pytest.raises(PathDenied, match="protected"):
        fs.write_bytes("sneaky/config", b"x")
    assert not (ws / ".git" / "config").exists()


# --------------------------------------------------------------------------- non-regular files

@pytest.mark.timeout(10)
def test_s6_2_fifo_is_refused_without_blocking(ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    fs = WorkspaceFS(str(ws))
    for op in (lambda: fs.read_bytes("pipe"), lambda: fs.write_bytes("pipe", b"x"), lambda: fs.delete("pipe"),
               lambda: fs.snapshot("pipe")):
        with pytest.raises(PathDenied, match="fifo"):
            op()
    assert stat.S_ISFIFO(os.lstat(ws / "pipe").st_mode)


@pytest.mark.timeout(10)
def test_s6_2_unix_socket_is_refused(ws: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(ws / "s.sock"))
        with pytest.raises(PathDenied, match="socket"):
            WorkspaceFS(str(ws)).read_bytes("s.sock")
    finally:
        sock.close()


# --------------------------------------------------------------------------- protection and globs

@pytest.mark.parametrize("path", [".git/config", ".git", ".git/hooks/pre-commit", ".ordinance/ordinance.db"])
def test_s6_2_default_protected_paths_cannot_be_changed_but_can_be_read(ws: Path, path: str) -> None:
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_bytes(b"[core]")
    fs = WorkspaceFS(str(ws))
    for op in (lambda: fs.write_bytes(path, b"x"), lambda: fs.delete(path), lambda: fs.mkdir(path)):
        with pytest.raises(PathDenied, match="protected"):
            op()
    assert fs.read_bytes(".git/config") == b"[core]"


def test_s6_2_protection_is_by_segment_not_by_string_prefix(ws: Path) -> None:
    fs = WorkspaceFS(str(ws))
    assert fs.mkdir(".github") is True
    fs.write_bytes(".github/ci.yml", b"ok")
    fs.write_bytes(".gitignore", b"x")


def test_s6_2_configured_protected_file_and_directory(ws: Path) -> None:
    fs = WorkspaceFS(str(ws), protected=("ordinance.toml", "keys/"))
    (ws / "keys").mkdir()
    for path in ("ordinance.toml", "keys/signing.key", "keys"):
        with pytest.raises(PathDenied, match="protected"):
            fs.write_bytes(path, b"x")
    fs.write_bytes("ordinance.toml.bak", b"fine")
    fs.write_bytes(".git", b"not protected under this configuration")


def test_s6_2_denied_globs_win_over_allowed_globs(ws: Path) -> None:
    fs = WorkspaceFS(str(ws), allowed_globs=("d/*",), denied_globs=("*.key",))
    fs.write_bytes("d/ok.txt", b"1")
    with pytest.raises(PathDenied, match="denied"):
        fs.write_bytes("d/id.key", b"1")
    with pytest.raises(PathDenied, match="allowed"):
        fs.write_bytes("top.txt", b"1")
    with pytest.raises(PathDenied, match="denied"):
        fs.read_bytes("d/id.key")


def test_s6_2_glob_language_matches_the_envelope() -> None:
    assert match_glob("src/*", "src/a/b.py")  # fnmatch: * also matches /
    assert match_glob("build/", "build") and match_glob("build/", "build/x/y")
    assert not match_glob("build/", "buildx")
    assert not match_glob("*.txt", "a.txt.bak")


# --------------------------------------------------------------------------- races

@pytest.mark.timeout(30)
@pytest.mark.parametrize("reject_symlinks", [True, False])
def test_s6_2_swapping_a_directory_for_a_symlink_never_escapes(ws: Path, outside: Path,
                                                               reject_symlinks: bool) -> None:
    """A directory swapped for a symlink to outside between (and during) calls: the fd walk never escapes."""
    (ws / "d" / "secret.txt").write_bytes(b"inside")
    fs = WorkspaceFS(str(ws), reject_symlinks=reject_symlinks)
    stop = threading.Event()
    errors: list[BaseException] = []
    swaps = [0]

    def swapper() -> None:
        try:
            while not stop.is_set():
                os.rename(ws / "d", ws / "d.real")
                os.symlink(outside, ws / "d")
                os.unlink(ws / "d")
                os.rename(ws / "d.real", ws / "d")
                swaps[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=swapper)
    thread.start()
    outcomes: set[str] = set()
    try:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                data = fs.read_bytes("d/secret.txt")
                assert data == b"inside", "read escaped the workspace"
                outcomes.add("read")
                fs.write_bytes("d/secret.txt", b"inside")
                outcomes.add("write")
                fs.mkdir("d/sub/made", parents=False)  # never re-creates a "d" that is swapped away
                fs.delete("d/sub/made")
            except PathDenied:
                outcomes.add("denied")
            except OSError:
                outcomes.add("oserror")  # the name was missing or changed mid-operation
    finally:
        stop.set()
        thread.join()
    assert not errors and swaps[0] > 0
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert outcomes  # something happened
