"""Workspace-confined file access (CONTRACT §0.5, §6.2).

Every path an action touches is workspace-relative (§0.5) and is resolved *on file descriptors*:
the workspace root is opened, then each component is opened relative to its parent's descriptor
(``os.open(component, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)``), and the final operation is made
relative to the last directory descriptor. There is no check-then-use on path strings, so a
directory swapped for a symlink between two calls can never make an operation leave the workspace.

    fs = WorkspaceFS("/srv/ws")                 # reject_symlinks=True, .git/ and .ordinance/ protected
    fs.write_bytes("out/report.txt", b"hi")     # atomic; "out" must exist (fs.mkdir("out") first)
    fs.read_bytes("out/report.txt")             # -> b"hi"
    fs.write_bytes(".git/config", b"x")         # PathDenied: protected path

Decisions where the contract is silent (documented here, relied upon by the ``fs.*`` actions):

* The workspace root itself is trusted operator configuration: it is opened following symlinks.
  Everything *below* it is subject to ``reject_symlinks``.
* With ``reject_symlinks`` (the default) a symlink in any component, intermediate or final, is
  denied — reading, writing, deleting and stat-ing a symlink are all refused.
* With ``reject_symlinks=False`` symlinks are followed, but only inside the workspace: a target is
  resolved lexically against the (already fd-verified) directory holding the link; an absolute
  target is accepted only when it lies under the root's real path; anything escaping is denied.
  Policy (protected paths, globs) is checked on both the requested and the resolved path. ``delete``
  removes a final symlink itself, never its target. A final component that turns into a symlink
  between resolution and use is denied (fail closed) in both modes.
* Only regular files are read or replaced: FIFOs, devices and sockets are refused (the final open
  uses ``O_NONBLOCK`` and the type is checked with ``fstat``, so a FIFO never blocks).
* ``write_bytes`` is atomic (temp file in the same directory, ``fsync``, ``os.replace``, directory
  ``fsync``); it never creates parent directories (use :meth:`WorkspaceFS.mkdir`). Because the file
  is replaced by a new inode, a write never goes *through* a hard link to a file elsewhere. A new
  file gets mode ``0o644`` unless a mode is given; replacing a file keeps its mode.
* Protected paths (self-modification protection) can be read but never written, created or
  deleted. An entry ending in ``/`` protects that directory and everything below it; otherwise it
  names exactly one file (the envelope's rule).
* Denied globs win over allowed globs; ``allowed_globs=None`` allows every path. Globs apply to
  reads and writes alike and use the envelope's language (:func:`match_glob`).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import secrets
import stat as _stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DEFAULT_PROTECTED",
    "MAX_READ_BYTES",
    "FileState",
    "FileTooLarge",
    "PathDenied",
    "PathStat",
    "WorkspaceFS",
    "check_relpath",
    "match_glob",
]

#: Protected by default (§6.2 "``.git/`` by default"; ``.ordinance/`` holds the default store).
DEFAULT_PROTECTED: tuple[str, ...] = (".git/", ".ordinance/")
#: Largest file :meth:`WorkspaceFS.read_bytes` returns.
MAX_READ_BYTES = 64 * 1024 * 1024
#: Longest relative path accepted.
MAX_PATH_CHARS = 4096
#: Symlink expansions allowed in one resolution (``reject_symlinks=False`` only), like the kernel's.
MAX_SYMLINK_HOPS = 40

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1024 * 1024


class PathDenied(PermissionError):
    """A path was refused by workspace confinement or policy (→ POLICY_DENIED)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = path if isinstance(path, str) else repr(path)
        self.reason = reason
        super().__init__(f"path {self.path!r} denied: {reason}")


class FileTooLarge(OSError):
    """A file is larger than the read limit."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"file {path!r} is larger than {limit} bytes ({size} bytes)")
        self.path, self.size, self.limit = path, size, limit


class PathStat(NamedTuple):
    """Result of :meth:`WorkspaceFS.stat`. ``mode`` is the full ``st_mode`` (type and permission bits)."""

    exists: bool
    mode: int | None
    size: int | None


@dataclass(frozen=True)
class FileState:
    """One consistent look at a path (see :meth:`WorkspaceFS.snapshot`)."""

    exists: bool
    mode: int | None  # full st_mode
    size: int | None
    sha256: str | None  # lowercase hex of the content, regular files only
    content: bytes | None  # the bytes, when a regular file no larger than the ``keep_bytes`` asked for

    @property
    def is_dir(self) -> bool:
        return self.mode is not None and _stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return self.mode is not None and _stat.S_ISREG(self.mode)


def check_relpath(path: object) -> str:
    """Return ``path`` if it is a §0.5 workspace path, else raise :class:`PathDenied`.

    A §0.5 path is a non-empty string of forward-slash separated segments, relative (no leading ``/``),
    with no empty, ``.`` or ``..`` segment, no NUL byte and no backslash.
    """
    if not isinstance(path, str):
        raise PathDenied(path, f"path must be a string, got {type(path).__name__}")
    if path == "":
        raise PathDenied(path, "empty path")
    if len(path) > MAX_PATH_CHARS:
        raise PathDenied(path[:64] + "…", f"longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise PathDenied(path, "NUL byte in path")
    if "\\" in path:
        raise PathDenied(path, "backslash in path (use forward slashes)")
    if path.startswith("/"):
        raise PathDenied(path, "absolute path (paths are relative to the workspace root)")
    for seg in path.split("/"):
        if seg == "":
            raise PathDenied(path, "empty path segment")
        if seg == "..":
            raise PathDenied(path, "'..' segment escapes the workspace")
        if seg == ".":
            raise PathDenied(path, "'.' segment")
    return path


def match_glob(pattern: str, path: str) -> bool:
    """Whether workspace path ``path`` matches ``pattern``.

    The same glob language as the envelope (:mod:`ordinance.governance.envelope`):
    :func:`fnmatch.fnmatchcase`, where ``*`` also matches ``/``; in addition a pattern ending in ``/``
    matches that directory and everything below it.
    """
    if pattern.endswith("/"):
        base = pattern[:-1]
        return fnmatch.fnmatchcase(path, base) or fnmatch.fnmatchcase(path, pattern + "*")
    return fnmatch.fnmatchcase(path, pattern)


def _is_protected(entry: str, path: str) -> bool:
    """The envelope's rule: ``dir/`` protects the directory and everything below it, else one exact file."""
    if entry.endswith("/"):
        return path == entry[:-1] or path.startswith(entry)
    return path == entry


class WorkspaceFS:
    """File operations confined to one workspace directory, made on descriptors (§6.2).

    Every method takes a §0.5 workspace-relative path. Refusals raise :class:`PathDenied`; ordinary
    file-system conditions raise the usual ``OSError`` subclasses (``FileNotFoundError``,
    ``IsADirectoryError``, ``NotADirectoryError``, ``FileExistsError``) with the relative path.
    Instances hold no open descriptor between calls.
    """

    def __init__(
        self,
        root: str,
        *,
        reject_symlinks: bool = True,
        protected: Iterable[str] = DEFAULT_PROTECTED,
        denied_globs: Iterable[str] = (),
        allowed_globs: Iterable[str] | None = None,
        max_read_bytes: int = MAX_READ_BYTES,
    ) -> None:
        self.root = os.path.abspath(root)
        self.reject_symlinks = reject_symlinks
        self.protected = tuple(protected)
        self.denied_globs = tuple(denied_globs)
        self.allowed_globs = None if allowed_globs is None else tuple(allowed_globs)
        self.max_read_bytes = max_read_bytes

    def __repr__(self) -> str:
        return f"WorkspaceFS({self.root!r}, reject_symlinks={self.reject_symlinks})"

    # ------------------------------------------------------------------ policy

    def check(self, rel: str, *, write: bool) -> str:
        """Path shape and policy for ``rel`` (no file-system access). Returns ``rel`` or raises PathDenied."""
        check_relpath(rel)
        for pattern in self.denied_globs:
            if match_glob(pattern, rel):
                raise PathDenied(rel, f"matches denied path {pattern!r}")
        if self.allowed_globs is not None and not any(match_glob(p, rel) for p in self.allowed_globs):
            raise PathDenied(rel, "not under any allowed path")
        if write:
            for entry in self.protected:
                if _is_protected(entry, rel):
                    raise PathDenied(rel, f"protected path {entry!r} cannot be changed")
        return rel

    def is_protected(self, rel: str) -> bool:
        return any(_is_protected(entry, rel) for entry in self.protected)

    # ------------------------------------------------------------------ resolution

    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "workspace root does not exist", self.root) from None
        except NotADirectoryError:
            raise NotADirectoryError(errno.ENOTDIR, "workspace root is not a directory", self.root) from None

    @staticmethod
    def _is_symlink(dir_fd: int, name: str) -> bool:
        try:
            return _stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    def _expand(self, rel: str, done: list[str], target: str, rest: list[str]) -> list[str]:
        """Components after replacing a symlink (in directory ``done``) by ``target``; never outside the root."""
        if target.startswith("/"):
            real_root = os.path.realpath(self.root)
            if target != real_root and not target.startswith(real_root.rstrip("/") + "/"):
                raise PathDenied(rel, f"symlink points outside the workspace ({target!r})")
            comps = target[len(real_root):].split("/")
        else:
            comps = done + target.split("/")
        out: list[str] = []
        for comp in comps:
            if comp in ("", "."):
                continue
            if comp == "..":
                if not out:
                    raise PathDenied(rel, f"symlink escapes the workspace ({target!r})")
                out.pop()
            else:
                out.append(comp)
        out += rest
        if not out:
            raise PathDenied(rel, "path resolves to the workspace root")
        return out

    def _walk(self, rel: str, *, follow_final: bool = True) -> tuple[int, str, str]:
        """Open every directory of ``rel`` one component at a time.

        Returns ``(parent_fd, final_name, resolved_rel)``; the caller owns ``parent_fd``. With
        ``reject_symlinks`` a symlinked directory raises PathDenied; otherwise it is expanded (inside
        the workspace only), as is a final symlink when ``follow_final``.
        """
        parts = rel.split("/")
        hops = 0
        while True:
            fd = self._open_root()
            done: list[str] = []
            restart: list[str] | None = None
            try:
                for i, comp in enumerate(parts[:-1]):
                    try:
                        nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                    except (NotADirectoryError, OSError) as exc:
                        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                            if exc.errno == errno.ENOENT:
                                raise FileNotFoundError(
                                    errno.ENOENT, "no such directory", "/".join(done + [comp])) from None
                            raise
                        if not self._is_symlink(fd, comp):
                            raise NotADirectoryError(
                                errno.ENOTDIR, "not a directory", "/".join(done + [comp])) from None
                        if self.reject_symlinks:
                            raise PathDenied(rel, f"symlink in path at {'/'.join(done + [comp])!r}") from None
                        restart = self._expand(rel, done, os.readlink(comp, dir_fd=fd), parts[i + 1:])
                        break
                    os.close(fd)
                    fd = nfd
                    done.append(comp)
                if restart is None:
                    name = parts[-1]
                    if follow_final and not self.reject_symlinks and self._is_symlink(fd, name):
                        restart = self._expand(rel, done, os.readlink(name, dir_fd=fd), [])
                    else:
                        return fd, name, "/".join(done + [name])
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise PathDenied(rel, "too many levels of symbolic links")
            parts = restart

    def _resolve(self, rel: str, *, write: bool, follow_final: bool = True) -> tuple[int, str, str]:
        self.check(rel, write=write)
        fd, name, resolved = self._walk(rel, follow_final=follow_final)
        if resolved != rel:
            try:
                self.check(resolved, write=write)
            except BaseException:
                os.close(fd)
                raise
        return fd, name, resolved

    @staticmethod
    def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _open_regular(self, dir_fd: int, name: str, rel: str) -> tuple[int, os.stat_result]:
        """Open a regular file for reading without following a symlink or blocking on a FIFO."""
        st = self._lstat(dir_fd, name)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", rel)
        self._refuse_kind(st, rel)
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathDenied(rel, "symlink in path (final component)") from None
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, "no such file", rel) from None
            raise
        st = os.fstat(fd)
        try:
            self._refuse_kind(st, rel)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    @staticmethod
    def _refuse_kind(st: os.stat_result, rel: str) -> None:
        mode = st.st_mode
        if _stat.S_ISREG(mode):
            return
        if _stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", rel)
        if _stat.S_ISLNK(mode):
            raise PathDenied(rel, "symlink in path (final component)")
        kind = ("fifo" if _stat.S_ISFIFO(mode) else "socket" if _stat.S_ISSOCK(mode)
                else "device" if _stat.S_ISCHR(mode) or _stat.S_ISBLK(mode) else "special file")
        raise PathDenied(rel, f"not a regular file ({kind})")

    # ------------------------------------------------------------------ reading

    def read_bytes(self, rel: str) -> bytes:
        """The content of regular file ``rel`` (at most ``max_read_bytes``, else :class:`FileTooLarge`)."""
        dir_fd, name, resolved = self._resolve(rel, write=False)
        try:
            fd, st = self._open_regular(dir_fd, name, resolved)
        finally:
            os.close(dir_fd)
        try:
            if st.st_size > self.max_read_bytes:
                raise FileTooLarge(rel, st.st_size, self.max_read_bytes)
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_read_bytes:
                    raise FileTooLarge(rel, total, self.max_read_bytes)
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def stat(self, rel: str) -> PathStat:
        """``(exists, st_mode, size)`` of ``rel``; a missing intermediate directory means "does not exist"."""
        try:
            dir_fd, name, resolved = self._resolve(rel, write=False)
        except (FileNotFoundError, NotADirectoryError):
            return PathStat(False, None, None)
        try:
            st = self._lstat(dir_fd, name)
        finally:
            os.close(dir_fd)
        if st is None:
            return PathStat(False, None, None)
        if _stat.S_ISLNK(st.st_mode):
            raise PathDenied(resolved, "symlink in path (final component)")
        return PathStat(True, st.st_mode, st.st_size)

    def exists(self, rel: str) -> bool:
        return self.stat(rel).exists

    def snapshot(self, rel: str, *, keep_bytes: int = 0) -> FileState:
        """Existence, mode, size and SHA-256 of ``rel`` in one walk; the content too if ≤ ``keep_bytes``.

        The hash is streamed, so it covers files of any size. Directories have ``sha256=None``.
        """
        try:
            dir_fd, name, resolved = self._resolve(rel, write=False)
        except (FileNotFoundError, NotADirectoryError):
            return FileState(False, None, None, None, None)
        try:
            st = self._lstat(dir_fd, name)
            if st is None:
                return FileState(False, None, None, None, None)
            if _stat.S_ISDIR(st.st_mode):
                return FileState(True, st.st_mode, st.st_size, None, None)
            fd, st = self._open_regular(dir_fd, name, resolved)
        finally:
            os.close(dir_fd)
        try:
            h = hashlib.sha256()
            kept: list[bytes] | None = [] if st.st_size <= keep_bytes else None
            total = 0
            while True:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                total += len(chunk)
                if kept is not None:
                    if total > keep_bytes:
                        kept = None
                    else:
                        kept.append(chunk)
            content = b"".join(kept) if kept is not None else None
            return FileState(True, st.st_mode, total, h.hexdigest(), content)
        finally:
            os.close(fd)

    def open_directory(self, rel: str | None) -> int:
        """A read-only descriptor of directory ``rel`` (the root when ``None``); the caller closes it."""
        if rel is None:
            return self._open_root()
        dir_fd, name, resolved = self._resolve(rel, write=False)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                if self._is_symlink(dir_fd, name):
                    raise PathDenied(resolved, "symlink in path (final component)") from None
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", resolved) from None
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, "no such directory", resolved) from None
            raise
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------------ writing

    def write_bytes(self, rel: str, data: bytes, mode: int | None = None) -> None:
        """Atomically replace (or create) regular file ``rel`` with ``data``.

        ``mode`` (permission bits) defaults to the replaced file's mode, or ``0o644`` for a new file.
        The parent directory must exist.
        """
        if mode is not None and not 0 <= mode <= 0o7777:
            raise ValueError(f"mode {mode!r} is not a permission mode")
        dir_fd, name, resolved = self._resolve(rel, write=True)
        try:
            st = self._lstat(dir_fd, name)
            if st is not None:
                self._refuse_kind(st, resolved)
                if mode is None:
                    mode = _stat.S_IMODE(st.st_mode)
            if mode is None:
                mode = 0o644
            tmp = f".ord-{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    os.fchmod(fd, mode)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except OSError:
                    pass
                raise
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self, rel: str) -> bool:
        """Remove regular file (or empty directory) ``rel``. Returns False when it did not exist.

        A non-empty directory raises ``OSError(ENOTEMPTY)``; FIFOs, devices and sockets are refused.
        With ``reject_symlinks=False`` a final symlink is removed itself, never its target.
        """
        try:
            dir_fd, name, resolved = self._resolve(rel, write=True, follow_final=False)
        except (FileNotFoundError, NotADirectoryError):
            return False  # a missing or non-directory ancestor: nothing to delete
        try:
            st = self._lstat(dir_fd, name)
            if st is None:
                return False
            if _stat.S_ISDIR(st.st_mode):
                os.rmdir(name, dir_fd=dir_fd)
            elif _stat.S_ISLNK(st.st_mode) and not self.reject_symlinks:
                os.unlink(name, dir_fd=dir_fd)
            else:
                self._refuse_kind(st, resolved)
                os.unlink(name, dir_fd=dir_fd)
            os.fsync(dir_fd)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dir_fd)

    def rmdir(self, rel: str) -> bool:
        """Remove empty directory ``rel``. Returns False when it did not exist."""
        try:
            dir_fd, name, _ = self._resolve(rel, write=True, follow_final=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            st = self._lstat(dir_fd, name)
            if st is None:
                return False
            if not _stat.S_ISDIR(st.st_mode):
                if _stat.S_ISLNK(st.st_mode):
                    raise PathDenied(rel, "symlink in path (final component)")
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", rel)
            os.rmdir(name, dir_fd=dir_fd)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dir_fd)

    def mkdir(self, rel: str, *, parents: bool = True, mode: int = 0o755) -> bool:
        """Create directory ``rel`` (and missing parents when ``parents``). Returns whether ``rel`` was created.

        Directories created here get exactly ``mode`` (not subject to the umask).
        """
        self.check(rel, write=True)
        parts = rel.split("/")
        hops = 0
        while True:
            fd = self._open_root()
            restart: list[str] | None = None
            created = False
            try:
                for i, comp in enumerate(parts):
                    last = i == len(parts) - 1
                    created = False
                    try:
                        nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                    except FileNotFoundError:
                        if not (parents or last):
                            raise FileNotFoundError(
                                errno.ENOENT, "no such directory", "/".join(parts[:i + 1])) from None
                        try:
                            os.mkdir(comp, 0o700, dir_fd=fd)
                            created = True
                        except FileExistsError:
                            pass  # raced with another creator: open what is there (still O_NOFOLLOW)
                        try:
                            nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                        except OSError as exc:
                            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                                raise PathDenied(rel, "path changed while it was being created") from None
                            raise
                        if created:
                            os.fchmod(nfd, mode)
                            os.fsync(fd)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                            raise
                        where = "/".join(parts[:i + 1])
                        if not self._is_symlink(fd, comp):
                            if last:
                                raise FileExistsError(errno.EEXIST, "exists and is not a directory", where) from None
                            raise NotADirectoryError(errno.ENOTDIR, "not a directory", where) from None
                        if self.reject_symlinks:
                            raise PathDenied(rel, f"symlink in path at {where!r}") from None
                        restart = self._expand(rel, parts[:i], os.readlink(comp, dir_fd=fd), parts[i + 1:])
                        self.check("/".join(restart), write=True)
                        break
                    os.close(fd)
                    fd = nfd
                if restart is None:
                    return created
            finally:
                os.close(fd)
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise PathDenied(rel, "too many levels of symbolic links")
            parts = restart
