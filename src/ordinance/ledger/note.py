"""C2SP signed notes (https://c2sp.org/signed-note) and checkpoints (https://c2sp.org/tlog-checkpoint).

A signed note is a text ending in a newline, a blank line, then one or more signature lines::

    — <key name> <base64(4-byte big-endian key ID || signature)>\\n

(U+2014 EM DASH, then a space).  Ed25519 (signature type ``0x01``) signs the note text bytes,
final newline included.  The key ID is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

Key strings, as in Go's ``golang.org/x/mod/sumdb/note``::

    verifier: <name>+<8 hex key ID>+<base64(0x01 || 32-byte public key)>
    signer:   PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>

A checkpoint's note text is ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` plus optional
non-empty extension lines.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "NoteError",
    "Signer",
    "Verifier",
    "generate_signer",
    "key_id",
    "note_text",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type identifier byte of Ed25519 in signed notes."""

MAX_SIGNATURES = 100
"""Notes with more signature lines are rejected as malformed (Go's limit)."""

_SIG_PREFIX = "\u2014 "
_MAX_TREE_SIZE = 2**64 - 1
_HASH_SIZE = 32
_HEX8 = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note, checkpoint or key string is malformed, unsigned by a known key, or badly signed."""


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: padding required, no whitespace, canonical trailing bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _valid_name(name: str) -> bool:
    """C2SP key names: non-empty, no Unicode space, no '+', no control characters."""
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _valid_name(name):
        raise NoteError(f"invalid key name {name!r}: must be non-empty, without spaces, '+' or control characters")


def key_id(name: str, public_key: bytes) -> int:
    """Ed25519 key ID: the first 4 bytes (big-endian) of ``SHA-256(name || 0x0A || 0x01 || public_key)``."""
    h = sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(h[:4], "big")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier: key name, key ID and 32-byte public key."""

    name: str
    key_id: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise NoteError("Ed25519 public key must be 32 bytes")
        if key_id(self.name, self.public_key) != self.key_id:
            raise NoteError(f"key ID {self.key_id:08x} does not match key name {self.name!r} and public key")

    @classmethod
    def from_key(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``; raises :class:`NoteError`."""
        if not isinstance(vkey, str):
            raise NoteError("verifier key must be a string")
        parts = vkey.split("+", 2)  # the base64 key may itself contain '+'
        if len(parts) != 3:
            raise NoteError("malformed verifier key: expected '<name>+<hex key ID>+<base64 key>'")
        name, hex_id, b64 = parts
        _check_name(name)
        if not _HEX8.fullmatch(hex_id):
            raise NoteError(f"malformed verifier key: key ID {hex_id!r} is not 8 lowercase hex digits")
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 key (expected 0x01 followed by 32 bytes)")
        return cls(name, int(hex_id, 16), raw[1:])

    def to_key(self) -> str:
        """The verifier key string."""
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{b64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return self.to_key()


class Signer:
    """An Ed25519 note signer (private key, key name and key ID)."""

    __slots__ = ("_private", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        public = _raw_public(private_key.public_key())
        self._private = private_key
        self._verifier = Verifier(name, key_id(name, public), public)

    @property
    def name(self) -> str:
        """Key name."""
        return self._verifier.name

    @property
    def key_id(self) -> int:
        """32-bit key ID."""
        return self._verifier.key_id

    @property
    def verifier(self) -> Verifier:
        """The matching verifier."""
        return self._verifier

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A signer with a fresh random key."""
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_key(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``; raises :class:`NoteError`."""
        if not isinstance(skey, str):
            raise NoteError("signer key must be a string")
        parts = skey.split("+", 4)  # the base64 key may itself contain '+'
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("malformed signer key: expected 'PRIVATE+KEY+<name>+<hex key ID>+<base64 key>'")
        name, hex_id, b64 = parts[2:]
        _check_name(name)
        if not _HEX8.fullmatch(hex_id):
            raise NoteError(f"malformed signer key: key ID {hex_id!r} is not 8 lowercase hex digits")
        raw = _b64decode(b64, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 key (expected 0x01 followed by a 32-byte seed)")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id != int(hex_id, 16):
            raise NoteError(f"signer key ID {hex_id} does not match its key name and key")
        return signer

    def to_key(self) -> str:
        """The private signer key string (keep it secret)."""
        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64}"

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, key_id={self.key_id:08x})"


def generate_signer(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key pair as ``(signer key string, verifier key string)``."""
    signer = Signer.generate(name)
    return signer.to_key(), signer.verifier.to_key()


def _check_chars(text: str, what: str) -> None:
    """Signed notes must be valid UTF-8 without ASCII control characters other than newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8 (lone surrogate)") from None
    bad = _CONTROL.search(text)
    if bad:
        raise NoteError(f"{what} contains control character U+{ord(bad.group()):04X} at offset {bad.start()}")


def _as_text(note: str | bytes) -> str:
    if isinstance(note, (bytes, bytearray)):
        try:
            return bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("malformed note: not valid UTF-8") from None
    if not isinstance(note, str):
        raise NoteError(f"note must be str or bytes, not {type(note).__name__}")
    return note


def sign_note(text: str, signers: Signer | Sequence[Signer]) -> str:
    """Sign ``text`` (non-empty, ending in a newline) with one or more signers; returns the note."""
    if isinstance(signers, Signer):
        signers = [signers]
    if not signers:
        raise NoteError("sign_note needs at least one signer")
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("note text must be a non-empty string ending in a newline")
    _check_chars(text, "note text")
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        sig = signer.key_id.to_bytes(4, "big") + signer.sign(message)
        lines.append(f"{_SIG_PREFIX}{signer.name} {base64.b64encode(sig).decode('ascii')}\n")
    return text + "\n" + "".join(lines)


def note_text(note: str | bytes) -> str:
    """The text of a note *without verifying any signature* (for inspection only).

    Raises :class:`NoteError` when the note is not syntactically a signed note.
    """
    text, _ = _split(_as_text(note))
    return text


def _split(note: str) -> tuple[str, list[tuple[str, str, int, bytes]]]:
    """Split a note into its text and parsed signature lines ``(line, name, key ID, signature)``."""
    _check_chars(note, "malformed note: the note")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or the last one lacks its newline")
    sigs = []
    for n, line in enumerate(block[:-1].split("\n"), 1):
        if n > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"malformed note: signature line {n} does not start with '\u2014 '")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name) or not b64:
            raise NoteError(f"malformed note: signature line {n} is not '\u2014 <key name> <base64>'")
        try:
            raw = _b64decode(b64, f"signature line {n}")
        except NoteError as exc:
            raise NoteError(f"malformed note: {exc}") from None
        if len(raw) < 5:
            raise NoteError(f"malformed note: signature line {n} is too short")
        sigs.append((line, name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text, sigs


def open_note(note: str | bytes, verifiers: Verifier | str | Iterable[Verifier | str]) -> str:
    """Verify a signed note and return its text.

    Follows the spec: signatures by unknown keys are ignored, a failing signature by a known key
    rejects the note, and at least one known key must have signed.  ``verifiers`` may be
    :class:`Verifier` objects or verifier key strings.  Raises :class:`NoteError`.
    """
    if isinstance(verifiers, (Verifier, str)):
        verifiers = [verifiers]
    known: dict[tuple[str, int], Verifier] = {}
    for item in verifiers:
        v = Verifier.from_key(item) if isinstance(item, str) else item
        known[(v.name, v.key_id)] = v
    text, sigs = _split(_as_text(note))
    message = text.encode("utf-8")
    verified: set[tuple[str, int]] = set()
    unknown: list[str] = []
    for _line, name, kid, sig in sigs:
        key = known.get((name, kid))
        if key is None:
            unknown.append(f"{name}+{kid:08x}")
            continue
        if (name, kid) in verified:
            continue  # a repeated signature by one key is dropped, as in Go
        if not key.verify(message, sig):
            raise NoteError(f"invalid signature by known key {name}+{kid:08x}: the note was altered or forged")
        verified.add((name, kid))
    if not verified:
        seen = ", ".join(dict.fromkeys(unknown))
        wanted = ", ".join(f"{n}+{k:08x}" for n, k in known) or "none"
        raise NoteError(f"note is not signed by a known key: signed by {seen}; known keys: {wanted}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: origin, tree size and RFC 6962 root hash (plus opaque extension lines)."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be a non-empty single line")
        _check_chars(self.origin, "checkpoint origin")
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int):
            raise NoteError("checkpoint tree size must be an integer")
        if not 0 <= self.tree_size <= _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.tree_size} is out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_SIZE:
            raise NoteError(f"checkpoint root hash must be {_HASH_SIZE} bytes")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise NoteError("checkpoint extension lines must be non-empty single lines")
            _check_chars(ext, "checkpoint extension line")

    def to_text(self) -> str:
        """The checkpoint's note text."""
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode("ascii"), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Strictly parse a checkpoint note text; raises :class:`NoteError`."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise NoteError("malformed checkpoint: text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("malformed checkpoint: needs origin, tree size and root hash lines")
        if any(not line for line in lines):
            raise NoteError("malformed checkpoint: empty line")
        origin, size, root, *ext = lines
        if not _DECIMAL.fullmatch(size):
            raise NoteError(f"malformed checkpoint: tree size {size!r} is not a decimal without leading zeros")
        tree_size = int(size)
        if tree_size > _MAX_TREE_SIZE:
            raise NoteError("malformed checkpoint: tree size exceeds 2^64-1")
        root_hash = _b64decode(root, "checkpoint root hash")
        if len(root_hash) != _HASH_SIZE:
            raise NoteError(f"malformed checkpoint: root hash is {len(root_hash)} bytes, expected {_HASH_SIZE}")
        return cls(origin, tree_size, root_hash, tuple(ext))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (root hash in lowercase hex)."""
        return {"origin": self.origin, "tree_size": self.tree_size, "root_hash": self.root_hash.hex()}


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The signed checkpoint note."""
    return sign_note(checkpoint.to_text(), signer)


def open_checkpoint(
    note: str | bytes, verifiers: Verifier | str | Iterable[Verifier | str], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note and parse it; with ``origin``, the origin must match."""
    cp = Checkpoint.parse(open_note(note, verifiers))
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp
