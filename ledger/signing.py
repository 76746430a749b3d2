"""Ed25519 keys and signatures: actors sign commands, regulators sign checkpoints.

Keys are made, stored (PEM) and used to sign with the `cryptography` library; signatures are checked with
libsodium (PyNaCl), which verifies one in half the time (40 us against 84 us here: a server under load and
`audit verify` check one per command). Both implement RFC 8032; libsodium is the stricter (it also refuses
small-order and non-canonical keys and points, which an honest key never has)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_sign_BYTES, crypto_sign_open, crypto_sign_PUBLICKEYBYTES
from nacl.exceptions import BadSignatureError

from ledger.errors import BadInput


def command_payload(store_id: str, name: str, command_id: str, args: dict[str, Any], expires: str) -> bytes:
    """The bytes an actor signs: compact JSON with sorted keys of the store's identity (the chain hash of its
    first event; "" for the command that creates the store), the command's name, id and normalized arguments,
    and the time after which the signature is refused (YYYY-MM-DDTHH:MM:SSZ)."""
    return orjson.dumps({"store": store_id, "command": name, "command_id": command_id, "args": args,
                         "expires": expires}, option=orjson.OPT_SORT_KEYS)


def sign_command(key: Ed25519PrivateKey, store_id: str, name: str, command_id: str, args: dict[str, Any],
                 expires: str) -> str:
    """The hex signature of a command (see command_payload)."""
    return sign(key, command_payload(store_id, name, command_id, args, expires))


def request_payload(store_id: str, actor: str, method: str, path: str, query: str, body: bytes, timestamp: str,
                    nonce: str) -> bytes:
    """The bytes an actor signs to read over HTTP: compact JSON with sorted keys of the store's identity, the
    actor, the method, the path, the raw query string, the body's sha256 (hex), the time (YYYY-MM-DDTHH:MM:SSZ)
    and a nonce used once."""
    import hashlib

    return orjson.dumps({"store": store_id, "actor": actor, "method": method.upper(), "path": path, "query": query,
                         "body_sha256": hashlib.sha256(body).hexdigest(), "timestamp": timestamp, "nonce": nonce},
                        option=orjson.OPT_SORT_KEYS)


def generate(path: str | os.PathLike[str]) -> str:
    """Write a new private key (PEM, mode 0600) to `path`; return the public key as hex."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    p = Path(path)
    if p.exists():
        raise BadInput(f"key file {p} exists already; refusing to overwrite it")
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    except OSError as e:
        raise BadInput(f"cannot write key file {p}: {e.strerror}") from None
    return public_hex(key)


MAX_KEY_FILE_BYTES = 16 * 1024  # a PEM Ed25519 key is 119 bytes; anything far larger is not a key file


def load_private(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise BadInput(f"cannot read private key {path}: longer than {MAX_KEY_FILE_BYTES} bytes, not a key file")
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as e:
        raise BadInput(f"cannot read private key {path}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"key {path} is not an Ed25519 private key")
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def parse_public(text: str) -> str:
    from ledger.units import parse_public_key

    return parse_public_key(text)


def sign(key: Ed25519PrivateKey, payload: bytes) -> str:
    return key.sign(payload).hex()


VERIFIED_KEPT = 4096  # signatures checked ahead of their command (remember_valid), kept until it asks
_verified: OrderedDict[tuple[bytes, bytes, bytes], bool] = OrderedDict()
_verified_lock = threading.Lock()


def decoded(public_key_hex: str, signature_hex: str) -> tuple[bytes, bytes] | None:
    """The key and signature as bytes, or None if either is not hex of the right length (never valid)."""
    try:
        key, sig = bytes.fromhex(public_key_hex), bytes.fromhex(signature_hex)
    except (ValueError, TypeError):
        return None
    if len(key) != crypto_sign_PUBLICKEYBYTES or len(sig) != crypto_sign_BYTES:
        return None
    return key, sig


def opens(key: bytes, sig: bytes, payload: bytes) -> bool:
    """Whether `sig` is the Ed25519 signature of `payload` by `key` (bytes; libsodium, strict RFC 8032)."""
    try:
        crypto_sign_open(sig + payload, key)  # libsodium, without the GIL: other threads run meanwhile
    except BadSignatureError:
        return False
    return True


def verify(public_key_hex: str, signature_hex: str, payload: bytes) -> bool:
    """True if `signature_hex` is the Ed25519 signature of `payload` by the key `public_key_hex` (hex text).
    A signature found valid ahead for the same key and payload (`remember_valid`) is answered from memory, once."""
    found = decoded(public_key_hex, signature_hex)
    if found is None:
        return False
    key, sig = found
    if _verified:
        with _verified_lock:
            if _verified.pop((key, sig, payload), False):
                return True
    return opens(key, sig, payload)


def remember_valid(key: bytes, sig: bytes, payload: bytes) -> None:
    """Remember a signature found valid for exactly these bytes (by the server's signature process,
    commands/verifier.py, or its checker thread), until `verify` asks for it; `verify` then decides exactly as
    it would have: the same pure function of the same bytes, computed earlier. At most VERIFIED_KEPT are kept
    (the oldest go first)."""
    with _verified_lock:
        _verified[(key, sig, payload)] = True
        while len(_verified) > VERIFIED_KEPT:
            _verified.popitem(last=False)
