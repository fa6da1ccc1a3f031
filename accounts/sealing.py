"""Secrets sealed at rest under the deployment's key-encryption key (KEY_ENCRYPTION_KEY),
AES-256-GCM. Kept in the lowest layer so every app seals the same way: federation seals
councils' private keys and agreements' secrets with it, accounts a council's single sign-on
client secret."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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
