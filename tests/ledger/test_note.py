"""§8: Ed25519 signed checkpoints as C2SP signed notes and tlog-checkpoints."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ordinance.ledger.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    generate_signer,
    key_id,
    note_text,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)

# Interoperability vector of Go's golang.org/x/mod/sumdb/note (Ed25519 is deterministic).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

# The example of c2sp.org/tlog-checkpoint (its public key is not published).
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

CP = Checkpoint("ordinance.test/journal", 1234, hashlib.sha256(b"root").digest())


def test_s8_go_interop_vector() -> None:
    """§8: keys, signature and note are byte-identical to Go's sumdb/note for its published vector."""
    signer = Signer.from_key(GO_SKEY)
    assert signer.to_key() == GO_SKEY
    assert signer.verifier.to_key() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert open_note(GO_NOTE, GO_VKEY) == GO_TEXT
    assert open_note(GO_NOTE.encode("utf-8"), [Verifier.from_key(GO_VKEY)]) == GO_TEXT


def test_s8_key_id_formula() -> None:
    """§8: key ID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], big-endian."""
    v = Verifier.from_key(GO_VKEY)
    h = hashlib.sha256(b"PeterNeumann\n\x01" + v.public_key).digest()
    assert key_id("PeterNeumann", v.public_key) == int.from_bytes(h[:4], "big") == 0xC74F20A3


def test_s8_generate_sign_open_round_trip() -> None:
    """§8: a generated key pair signs a checkpoint that opens and parses back identically."""
    skey, vkey = generate_signer("ordinance.test/journal")
    assert skey.startswith("PRIVATE+KEY+ordinance.test/journal+")
    assert vkey.startswith("ordinance.test/journal+")
    signer = Signer.from_key(skey)
    note = sign_checkpoint(CP, signer)
    assert note.startswith(CP.to_text() + "\n\u2014 ordinance.test/journal ")
    assert open_checkpoint(note, vkey) == CP
    assert open_checkpoint(note, vkey, origin="ordinance.test/journal") == CP
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, vkey, origin="other.example/log")
    assert note_text(note) == CP.to_text()


def test_s8_wrong_key_rejected() -> None:
    """§8: a note is rejected under a key that did not sign it, naming the signer seen."""
    note = sign_checkpoint(CP, Signer.generate("ordinance.test/journal"))
    other = Signer.generate("ordinance.test/journal").verifier  # same name, different key
    with pytest.raises(NoteError, match=r"not signed by a known key: signed by ordinance\.test/journal\+"):
        open_note(note, other)


def test_s8_unknown_signer_rejected_and_named() -> None:
    """§8: signatures by unknown keys are ignored; with none known the error names who signed."""
    with pytest.raises(NoteError, match="example.com/behind-the-sofa"):
        open_note(SPEC_CHECKPOINT, GO_VKEY)
    assert Checkpoint.parse(note_text(SPEC_CHECKPOINT)).tree_size == 20852163


def test_s8_extra_unknown_signatures_are_ignored() -> None:
    """§8: a cosignature by an unknown key (e.g. a witness) does not stop a known one verifying."""
    log, witness = Signer.generate("log.example/a"), Signer.generate("witness.example/w")
    note = sign_note(CP.to_text(), [witness, log])
    assert open_note(note, log.verifier) == CP.to_text()
    assert open_note(note, [witness.verifier, log.verifier]) == CP.to_text()


def _flip(s: str, i: int) -> str:
    c = s[i]
    repl = "B" if c != "B" else "C"
    return s[:i] + repl + s[i + 1 :]


def test_s8_flipped_byte_anywhere_is_rejected() -> None:
    """§8: changing any character of the text or of the signature makes the note fail to open."""
    signer = Signer.generate("ordinance.test/journal")
    note = sign_checkpoint(CP, signer)
    text_len = len(CP.to_text())
    for i in range(len(note) - 1):  # the final newline is structural
        if note[i] == "\n":
            continue
        with pytest.raises(NoteError):
            open_note(_flip(note, i), signer.verifier)
    sig_b64 = note.rsplit(" ", 1)[1].strip()
    raw = bytearray(base64.b64decode(sig_b64))
    for i in range(4, len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = note[: text_len + 1] + f"\u2014 {signer.name} {base64.b64encode(bad).decode()}\n"
        with pytest.raises(NoteError, match="invalid signature"):
            open_note(forged, signer.verifier)


@pytest.mark.parametrize(
    "note",
    [
        "",
        "no signatures\n",
        "text\n\n",
        "text\n\nnot a signature line\n",
        "text\n\n\u2014 name\n",
        "text\n\n\u2014 name !!!!\n",
        "text\n\n\u2014 name AAAA\n",  # fewer than 5 bytes
        "text\n\n\u2014 na+me AAAAAAAA\n",
        "text\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        "text\twith tab\n\n\u2014 name AAAAAAAA\n",
        "-- name AAAAAAAA\n",
        "text\n\n\u2014 name AAAAAAAA\n" * 1 + "\u2014 name AAAAAAAA\n" * 100,
    ],
)
def test_s8_malformed_notes_rejected(note: str) -> None:
    """§8: syntactically broken notes raise NoteError (never crash, never verify)."""
    with pytest.raises(NoteError):
        open_note(note, GO_VKEY)


def test_s8_signing_refuses_bad_text() -> None:
    """§8: note text must end in a newline and hold no control characters."""
    signer = Signer.from_key(GO_SKEY)
    for text in ["", "no newline", "bad\x00char\n", "tab\there\n"]:
        with pytest.raises(NoteError):
            sign_note(text, signer)
    with pytest.raises(NoteError):
        sign_note("ok\n", [])


@pytest.mark.parametrize(
    "key",
    [
        "",
        "garbage",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case hex
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy",  # short key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        GO_SKEY,
    ],
)
def test_s8_verifier_key_parsing_rejects_garbage(key: str) -> None:
    """§8: malformed verifier key strings raise NoteError."""
    with pytest.raises(NoteError):
        Verifier.from_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "",
        GO_VKEY,
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # wrong key ID
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # algorithm 0x02
        "PRIVATE+KEYS+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_s8_signer_key_parsing_rejects_garbage(key: str) -> None:
    """§8: malformed signer key strings raise NoteError."""
    with pytest.raises(NoteError):
        Signer.from_key(key)


def test_s8_checkpoint_text_format() -> None:
    """§8: checkpoint text is origin, decimal size, base64 root, then extension lines."""
    cp = Checkpoint("o.example/log", 0, hashlib.sha256(b"").digest(), ("ext line",))
    text = cp.to_text()
    assert text == "o.example/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next line\n"
    assert Checkpoint.parse(text) == cp


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n12\n",
        "origin\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",  # no final newline
        "\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # empty origin
        "origin\n012\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # leading zero
        "origin\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n+1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n1 \n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n\u0661\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # Arabic-Indic digit one
        "origin\n18446744073709551616\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",  # no padding
        "origin\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",  # non-canonical bits
        "origin\n12\nZG9uJ3QgY2FyZQ==\n",  # not 32 bytes
        "origin\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n",  # empty extension line
    ],
)
def test_s8_checkpoint_parse_is_strict(text: str) -> None:
    """§8: anything but a well-formed checkpoint text raises NoteError."""
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_s8_checkpoint_max_size_accepted() -> None:
    """§8: tree sizes up to 2^64-1 are valid."""
    text = "origin\n18446744073709551615\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    assert Checkpoint.parse(text).tree_size == 2**64 - 1
