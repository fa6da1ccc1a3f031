"""An agreement's match-key secret on its way to the partner: sealed with HPKE (RFC 9180,
base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) to the partner's X25519
key published in its signed key document, never sent in clear (decision 0016).

The sealed secret travels as

    "sealed_match_key_secret": {"suite": "HPKE-Base-X25519-SHA256-AES128GCM",
                                "key_id": <recipient's encryption key id>,
                                "enc": <base64url>, "ct": <base64url>}

with `info` = RFC 8785 JSON of {"protocol", "message", "agreement_id", "sender",
"recipient"[, "rekey_id"]} and `aad` = SHA-256 of the agreement document's RFC 8785 bytes
without its signatures, so a sealed secret opens only in the message, agreement and
direction it was made for."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from django.utils import timezone

from federation import protocol, sealing
from federation.directory.models import CouncilEncryptionKey
from federation.directory.services import council_encryption_key_current
from federation.selectors import RETIRED_KEY_VALID
from tenants.canonical import canonical_json
from tenants.models import Council

PROTOCOL_LABEL = "patchwork/agreement-secret/v1"
OFFER = "patchwork.agreement-offer"
REKEY = "patchwork.agreement-rekey"
SEALED_FIELD = "sealed_match_key_secret"
# The field that carried the secret in clear before decision 0016: refused when received.
CLEAR_FIELD = "match_key_secret"
SECRET_BYTES = 32
# AES-128-GCM's tag is 16 bytes; the sealed secret is exactly the secret and its tag.
SEALED_BYTES = SECRET_BYTES + 16


def secret_info(
    *, message: str, agreement_id: str, sender: str, recipient: str, rekey_id: str = ""
) -> bytes:
    """HPKE `info`: which protocol, which message, which agreement, from whom to whom (and,
    for a rekey, which one)."""
    fields = {
        "protocol": PROTOCOL_LABEL,
        "message": message,
        "agreement_id": agreement_id,
        "sender": sender,
        "recipient": recipient,
    }
    if rekey_id:
        fields["rekey_id"] = rekey_id
    return canonical_json(fields)


def secret_aad(document: Mapping[str, Any]) -> bytes:
    """HPKE `aad`: the agreement document's digest (its signatures left out, as in signing)."""
    return hashlib.sha256(protocol.canonical(document)).digest()


def encryption_key_entry(key: CouncilEncryptionKey) -> dict[str, Any]:
    """How a council publishes its X25519 key (key document and card, inside the signed
    content)."""
    public = bytes(key.public_key)
    return {
        "key_id": key.key_id,
        "suite": sealing.HPKE_SUITE,
        "public_key": protocol.b64(public),
        "fingerprint": protocol.fingerprint(public),
    }


def encryption_key_from_entries(entries: Any) -> tuple[str, bytes] | None:
    """The first well-formed published X25519 key: (key id, raw public key)."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("suite") != sealing.HPKE_SUITE:
            continue
        try:
            public = protocol.unb64(str(entry["public_key"]))
        except (KeyError, ValueError):
            continue
        if (
            len(public) == sealing.X25519_KEY_BYTES
            and protocol.fingerprint(public) == entry.get("fingerprint")
            and isinstance(entry.get("key_id"), str)
        ):
            return entry["key_id"], public
    return None


def local_encryption_key(council_id: int) -> tuple[str, bytes] | None:
    """A council on this deployment: its current X25519 key, from the platform's table."""
    key = council_encryption_key_current(council_id)
    return (key.key_id, bytes(key.public_key)) if key else None


def own_private_key(council: Council, key_id: str) -> bytes | None:
    """The council's X25519 private key `key_id`, opened, if it is current or retired
    less than seven days ago (a partner may have sealed to it just before a rotation)."""
    key = CouncilEncryptionKey.objects.filter(council=council, key_id=key_id).first()
    if key is None:
        return None
    if key.retired_at is not None and key.retired_at + RETIRED_KEY_VALID <= timezone.now():
        return None
    return sealing.unseal(
        bytes(key.sealed_private_key), context=sealing.encryption_key_context(key.key_id)
    )


def secret_seal(
    secret: bytes, *, recipient_key: tuple[str, bytes], info: bytes, aad: bytes
) -> dict[str, str]:
    """The secret sealed to the recipient's key, as the `sealed_match_key_secret` field."""
    key_id, public = recipient_key
    enc, ct = sealing.hpke_seal(secret, public_key=public, info=info, aad=aad)
    return {
        "suite": sealing.HPKE_SUITE,
        "key_id": key_id,
        "enc": protocol.b64(enc),
        "ct": protocol.b64(ct),
    }


def secret_open(
    payload: Mapping[str, Any],
    *,
    private_key_for: Callable[[str], bytes | None],
    info: bytes,
    aad: bytes,
) -> bytes:
    """The secret a message carries, opened; refused (400, with a reason) if it came in
    clear, is missing or malformed, names a key we do not hold, or does not open with
    this `info` and `aad`."""
    if CLEAR_FIELD in payload:
        raise protocol.RequestRefused("clear_secret_refused", 400)
    sealed = payload.get(SEALED_FIELD)
    if sealed is None:
        raise protocol.RequestRefused("sealed_secret_missing", 400)
    if not isinstance(sealed, dict) or set(sealed) != {"suite", "key_id", "enc", "ct"}:
        raise protocol.RequestRefused("sealed_secret_malformed", 400)
    if sealed["suite"] != sealing.HPKE_SUITE:
        raise protocol.RequestRefused("sealed_secret_unsupported_suite", 400)
    try:
        enc = protocol.unb64(str(sealed["enc"]))
        ct = protocol.unb64(str(sealed["ct"]))
    except ValueError as exc:
        raise protocol.RequestRefused("sealed_secret_malformed", 400) from exc
    if len(enc) != sealing.X25519_KEY_BYTES or len(ct) != SEALED_BYTES:
        raise protocol.RequestRefused("sealed_secret_malformed", 400)
    private = private_key_for(str(sealed["key_id"]))
    if private is None:
        raise protocol.RequestRefused("sealed_secret_unknown_key", 400)
    try:
        secret = sealing.hpke_open(enc, ct, private_key=private, info=info, aad=aad)
    except sealing.NotOpened as exc:
        raise protocol.RequestRefused("sealed_secret_not_opened", 400) from exc
    if len(secret) != SECRET_BYTES:
        raise protocol.RequestRefused("sealed_secret_malformed", 400)
    return secret
