"""Council keys and sealed secrets (`seal` and `unseal` live in accounts.sealing, the
lowest layer, so accounts can seal a council's sign-on secret the same way).

- Under the deployment's key-encryption key (KEY_ENCRYPTION_KEY), AES-256-GCM: the private
  halves of each council's Ed25519 signing keys and X25519 encryption keys, and each
  agreement's match-key secret at rest.
- To another council, HPKE (RFC 9180, base mode): an agreement's match-key secret on its
  way to the partner, sealed to the partner's published X25519 key (decision 0016)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pyhpke import AEADId, CipherSuite, KDFId, KEMId
from pyhpke.exceptions import PyHPKEError

from accounts.sealing import NONCE_BYTES as NONCE_BYTES
from accounts.sealing import seal as seal
from accounts.sealing import unseal as unseal


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 pair as raw bytes: (public, private)."""
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    private_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return public_raw, private_raw


def private_key_context(key_id: str) -> str:
    return f"patchwork:signing-key:{key_id}"


# --- HPKE to another council ------------------------------------------------------------------

# RFC 9180 ids 0x0020 / 0x0001 / 0x0001; the name as the COSE-HPKE drafts spell it.
HPKE_SUITE = "HPKE-Base-X25519-SHA256-AES128GCM"
_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)
X25519_KEY_BYTES = 32


class NotOpened(Exception):
    """A sealed value did not open: wrong key, wrong info or aad, or altered bytes."""


def new_encryption_key_pair() -> tuple[bytes, bytes]:
    """A fresh X25519 pair as raw bytes: (public, private)."""
    private = X25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    private_raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return public_raw, private_raw


def encryption_key_context(key_id: str) -> str:
    return f"patchwork:encryption-key:{key_id}"


def hpke_seal(
    plaintext: bytes, *, public_key: bytes, info: bytes, aad: bytes
) -> tuple[bytes, bytes]:
    """Single-shot HPKE base-mode encryption to a raw X25519 public key: (enc, ct)."""
    enc, context = _SUITE.create_sender_context(
        _SUITE.kem.deserialize_public_key(public_key), info=info
    )
    return enc, context.seal(plaintext, aad=aad)


def hpke_open(enc: bytes, ct: bytes, *, private_key: bytes, info: bytes, aad: bytes) -> bytes:
    """The plaintext, or NotOpened."""
    try:
        context = _SUITE.create_recipient_context(
            enc, _SUITE.kem.deserialize_private_key(private_key), info=info
        )
        return context.open(ct, aad=aad)
    except (PyHPKEError, ValueError) as exc:
        raise NotOpened(type(exc).__name__) from exc
