"""Signatures as ledger.signing checks them (libsodium): what cryptography signs verifies, and nothing else."""

from __future__ import annotations

from pathlib import Path

from ledger import signing


def new_key(path: Path):
    signing.generate(path)
    return signing.load_private(path)


def test_a_signature_verifies_only_for_its_key_and_its_exact_bytes(tmp_path: Path) -> None:
    key, other = new_key(tmp_path / "a.key"), new_key(tmp_path / "b.key")
    pub, payload = signing.public_hex(key), signing.command_payload("s", "transfer", "c-1", {"quantity": 1}, "Z")
    sig = signing.sign(key, payload)
    assert signing.verify(pub, sig, payload)
    assert not signing.verify(signing.public_hex(other), sig, payload)  # another key
    assert not signing.verify(pub, signing.sign(other, payload), payload)  # another signer
    assert not signing.verify(pub, sig, payload.replace(b'"quantity":1', b'"quantity":2'))  # another command
    assert not signing.verify(pub, sig, payload + b" ")
    for i in (0, 31, 32, 63):  # one bit of R or of S changed
        flipped = bytearray(bytes.fromhex(sig))
        flipped[i] ^= 1
        assert not signing.verify(pub, flipped.hex(), payload)


def test_malformed_keys_and_signatures_are_refused_not_raised(tmp_path: Path) -> None:
    key = new_key(tmp_path / "a.key")
    pub, payload = signing.public_hex(key), b"payload"
    sig = signing.sign(key, payload)
    for bad_pub, bad_sig in [(pub[:-2], sig), (pub + "00", sig), (pub, sig[:-2]), (pub, sig + "00"),
                             ("zz" * 32, sig), (pub, "zz" * 64), ("", ""), (pub, "")]:
        assert signing.verify(bad_pub, bad_sig, payload) is False
    identity = "01" + "00" * 31  # a small-order point: no honest key, and no signature under it is taken
    assert not signing.verify(identity, "01" + "00" * 63, payload)


def test_a_signature_checked_ahead_answers_once_and_only_for_its_exact_key_signature_and_bytes(
        tmp_path: Path, monkeypatch) -> None:
    """remember_valid (the server's signature checker, ahead of the writer) only memoizes verify: the same
    answer for the same key, signature and payload bytes, and nothing for anything else."""
    monkeypatch.setattr(signing, "_verified", type(signing._verified)())
    key, other = new_key(tmp_path / "a.key"), new_key(tmp_path / "b.key")
    pub, payload = signing.public_hex(key), signing.command_payload("s", "transfer", "c-1", {"quantity": 1}, "Z")
    sig = signing.sign(key, payload)
    signing.remember_valid(*signing.decoded(pub, sig), payload)
    assert len(signing._verified) == 1
    assert not signing.verify(signing.public_hex(other), sig, payload)  # a rotated key: not the one checked
    assert not signing.verify(pub, sig, payload + b" ")  # other bytes
    assert len(signing._verified) == 1  # neither used it
    assert signing.verify(pub, sig, payload) and not signing._verified  # answered from memory, once
    assert signing.verify(pub, sig, payload)  # and then by libsodium again
    forged = signing.sign(other, payload)
    assert not signing.verify(pub, forged, payload) and not signing._verified


def test_signatures_checked_ahead_are_kept_within_their_bound(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(signing, "_verified", type(signing._verified)())
    monkeypatch.setattr(signing, "VERIFIED_KEPT", 3)
    key = new_key(tmp_path / "a.key")
    pub = signing.public_hex(key)
    payloads = [f"p{i}".encode() for i in range(5)]
    for p in payloads:
        signing.remember_valid(*signing.decoded(pub, signing.sign(key, p)), p)
    assert [k[2] for k in signing._verified] == payloads[2:]  # the oldest went first
