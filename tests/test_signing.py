"""Signatures as ledger.signing checks them (libsodium): what cryptography signs verifies, and nothing else."""

from __future__ import annotations

from pathlib import Path

from ledger import signing


def new_key(path: Path):  # noqa: ANN201 - an Ed25519PrivateKey
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
