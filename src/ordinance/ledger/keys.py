"""The log's Ed25519 signing key (§8): made on first use, kept in a file only its owner can read.

Where the key lives (first match wins):

1. ``$ORDINANCE_KEY_DIR/ordinance-signing.key`` when ``ORDINANCE_KEY_DIR`` is set (any backend);
2. beside the store: ``<directory of the SQLite file>/ordinance-signing.key`` (``store.key_dir``);
3. for a store without a directory of its own (PostgreSQL, ``:memory:``):
   ``$XDG_CONFIG_HOME/ordinance/`` or ``~/.config/ordinance/``.

The file holds one C2SP signer key string (``PRIVATE+KEY+<name>+<key id>+<base64>``) and a newline.
It is created with mode 0600 (its directory 0700 when Ordinance creates it) by writing a private
temporary file and hard-linking it into place, so two processes racing to create it end up with
the same key.  A key file that its group or other users may read or write is refused.

The key's name is the log *origin* that every checkpoint names: ``$ORDINANCE_LOG_ORIGIN`` when set,
else ``ordinance/<hostname>``.  The public half (a C2SP note verifier key) is derived, never stored.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .note import NoteError, Signer, Verifier

__all__ = [
    "KEY_DIR_ENV",
    "KEY_FILE_NAME",
    "ORIGIN_ENV",
    "KeyInfo",
    "SigningKeyError",
    "default_origin",
    "key_path",
    "load_signer",
    "load_verifier",
    "read_verifier_key",
]

KEY_FILE_NAME = "ordinance-signing.key"
"""File name of the signing key."""

KEY_DIR_ENV = "ORDINANCE_KEY_DIR"
"""Environment variable naming the key directory (overrides the store's directory)."""

ORIGIN_ENV = "ORDINANCE_LOG_ORIGIN"
"""Environment variable naming the log origin (the key name) used when a key is made."""

_NAME_BAD = re.compile(r"[^A-Za-z0-9._/:@-]")


class SigningKeyError(Exception):
    """The signing key cannot be made, read or trusted.  The message says which file and why."""


@dataclass(frozen=True)
class KeyInfo:
    """A loaded key: the signer, where it lives and whether this call created it."""

    signer: Signer
    path: Path
    created: bool

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    @property
    def origin(self) -> str:
        return self.signer.name


def default_origin() -> str:
    """The log origin for a new key: ``$ORDINANCE_LOG_ORIGIN``, else ``ordinance/<hostname>``.

    A configured origin must be a valid C2SP key name (no spaces, no ``+``); a host name is cleaned up
    (characters outside ``[A-Za-z0-9._/:@-]`` become ``-``).
    """
    configured = os.environ.get(ORIGIN_ENV)
    if configured is not None:
        if not configured or "+" in configured or any(c.isspace() or c < " " for c in configured):
            raise SigningKeyError(
                f"{ORIGIN_ENV}={configured!r} is not a valid log origin: it must be non-empty, "
                "without spaces, '+' or control characters"
            )
        return configured
    host = _NAME_BAD.sub("-", socket.gethostname() or "localhost").strip("-") or "localhost"
    return f"ordinance/{host}"


def _config_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "ordinance"


def key_path(store: Any = None, *, key_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the signing key of ``store`` lives (see the module doc for the order).

    ``key_dir`` (an explicit directory) wins over everything else.
    """
    if key_dir is not None:
        return Path(key_dir) / KEY_FILE_NAME
    env = os.environ.get(KEY_DIR_ENV)
    if env:
        return Path(env) / KEY_FILE_NAME
    beside = getattr(store, "key_dir", None) if store is not None else None
    if beside:
        return Path(beside) / KEY_FILE_NAME
    return _config_dir() / KEY_FILE_NAME


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise SigningKeyError(f"signing key {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise SigningKeyError(
            f"signing key {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"refusing to use it: run 'chmod 600 {path}' if it was never exposed, otherwise make a new key"
        )
    if os.name == "posix" and hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise SigningKeyError(f"signing key {path} belongs to another user (uid {st.st_uid}); refusing to use it")


def _read_signer(path: Path) -> Signer:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror or exc}") from None
    try:
        _check_private(path, os.fstat(fd))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(4096)
    finally:
        os.close(fd)
    try:
        text = raw.decode("ascii").strip()
        return Signer.from_key(text)
    except (UnicodeDecodeError, NoteError) as exc:
        reason = exc if isinstance(exc, NoteError) else "not ASCII text"
        raise SigningKeyError(f"signing key {path} is not a valid C2SP Ed25519 signer key: {reason}") from None


def _create(path: Path, origin: str) -> bool:
    """Write a new key at ``path`` unless one appears first; True if this call made it."""
    directory = path.parent
    try:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        signer = Signer.generate(origin)
        fd, tmp = tempfile.mkstemp(prefix=".ordinance-signing.", suffix=".tmp", dir=directory)
    except NoteError as exc:
        raise SigningKeyError(f"cannot make a signing key named {origin!r}: {exc}") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot create signing key {path}: {exc.strerror or exc}") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # mkstemp already uses 0600; say it explicitly
        with os.fdopen(fd, "wb") as fh:
            fh.write((signer.to_key() + "\n").encode("ascii"))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if another process published a key first
        except FileExistsError:
            return False
        except OSError as exc:
            raise SigningKeyError(f"cannot create signing key {path}: {exc.strerror or exc}") from None
        try:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return True
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def load_signer(
    store: Any = None, *, key_dir: str | os.PathLike[str] | None = None, create: bool = True
) -> KeyInfo:
    """The log's signer, made on first use (``create=True``).

    Raises :class:`SigningKeyError` when the key file is missing (and ``create`` is false), unreadable,
    malformed, accessible by others, or named differently from a configured ``ORDINANCE_LOG_ORIGIN``.
    """
    path = key_path(store, key_dir=key_dir)
    created = False
    try:
        signer = _read_signer(path)
    except FileNotFoundError:
        if not create:
            raise SigningKeyError(f"no signing key at {path} (it is made by 'ordinance journal checkpoint')") from None
        created = _create(path, default_origin())
        try:
            signer = _read_signer(path)
        except FileNotFoundError:
            raise SigningKeyError(f"signing key {path} vanished right after it was created") from None
    configured = os.environ.get(ORIGIN_ENV)
    if configured and configured != signer.name:
        raise SigningKeyError(
            f"signing key {path} belongs to log {signer.name!r} but {ORIGIN_ENV} is {configured!r}: "
            "a log keeps its origin for life; unset the variable or point ORDINANCE_KEY_DIR elsewhere"
        )
    return KeyInfo(signer, path, created)


def load_verifier(store: Any = None, *, key_dir: str | os.PathLike[str] | None = None) -> Verifier:
    """The public verifier of an existing key (never makes one)."""
    return load_signer(store, key_dir=key_dir, create=False).verifier


def read_verifier_key(source: str) -> Verifier:
    """A verifier from a key file (one ``<name>+<id>+<base64>`` line) or from the key string itself.

    Raises :class:`SigningKeyError` with a one-line reason.
    """
    p = Path(source)
    text: str
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        try:  # not a file: perhaps the key string itself
            return Verifier.from_key(source.strip())
        except NoteError:
            raise SigningKeyError(f"public key file not found: {source}") from None
    except IsADirectoryError:
        raise SigningKeyError(f"public key path is a directory, not a file: {source}") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key file {source}: {exc.strerror or exc}") from None
    else:
        if len(raw) > 4096:
            raise SigningKeyError(f"public key file {source} is too large to be a verifier key")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SigningKeyError(f"public key file {source} is not UTF-8 text") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        raise SigningKeyError(f"public key {source} must hold exactly one verifier key line, found {len(lines)}")
    if lines[0].startswith("PRIVATE+KEY+"):
        raise SigningKeyError(f"{source} holds a PRIVATE signing key; give the public key ('ordinance journal public-key')")
    try:
        return Verifier.from_key(lines[0])
    except NoteError as exc:
        raise SigningKeyError(f"public key {source} is not a C2SP Ed25519 verifier key: {exc}") from None
