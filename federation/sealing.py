"""Council signing keys: Ed25519 pairs whose private halves are sealed with AES-256-GCM
under the deployment's key-encryption key (KEY_ENCRYPTION_KEY)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from django.conf import settings

NONCE_BYTES = 12


def seal(plaintext: bytes, *, context: str) -> bytes:
    """Encrypt under the KEK; `context` is bound as associated data, so a sealed value
    copied onto another record (another council, another key id) will not open."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(settings.KEY_ENCRYPTION_KEY).encrypt(nonce, plaintext, context.encode())


def unseal(sealed: bytes, *, context: str) -> bytes:
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    return AESGCM(settings.KEY_ENCRYPTION_KEY).decrypt(nonce, ciphertext, context.encode())


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 pair as raw bytes: (public, private)."""
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    private_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return public_raw, private_raw


def private_key_context(key_id: str) -> str:
    return f"patchwork:signing-key:{key_id}"
