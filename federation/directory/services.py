"""Writes and reads of the directory: a council's signing keys, and its peer entry."""

from __future__ import annotations

import secrets

from django.utils import timezone

from federation import sealing
from federation.directory.models import (
    CouncilEncryptionKey,
    CouncilSigningKey,
    FederationPeer,
    council_federation_id,
)
from tenants.models import Council


def council_signing_key_create(*, council: Council) -> CouncilSigningKey:
    """A new Ed25519 signing key for `council`, its private half sealed under the KEK."""
    key_id = f"{council.code}-{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"
    public, private = sealing.new_key_pair()
    return CouncilSigningKey.objects.create(
        council=council,
        key_id=key_id,
        public_key=public,
        sealed_private_key=sealing.seal(private, context=sealing.private_key_context(key_id)),
    )


def council_encryption_key_create(*, council: Council) -> CouncilEncryptionKey:
    """A new X25519 key for secrets sealed to `council` (HPKE), its private half sealed
    under the KEK."""
    key_id = f"{council.code}-x25519-{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"
    public, private = sealing.new_encryption_key_pair()
    return CouncilEncryptionKey.objects.create(
        council=council,
        key_id=key_id,
        public_key=public,
        sealed_private_key=sealing.seal(private, context=sealing.encryption_key_context(key_id)),
    )


def council_encryption_key_current(council_id: int) -> CouncilEncryptionKey | None:
    """The key partners seal secrets to: the council's newest key not retired."""
    return (
        CouncilEncryptionKey.objects.filter(council_id=council_id, retired_at__isnull=True)
        .order_by("-created_at")
        .first()
    )


def council_current_key(council: Council) -> CouncilSigningKey | None:
    return council.signing_keys.filter(retired_at__isnull=True).order_by("-created_at").first()


def council_peer_ensure(*, council: Council) -> FederationPeer:
    """The council's own entry in the directory (councils on this deployment are listed
    automatically)."""
    peer, _ = FederationPeer.objects.get_or_create(
        federation_id=council_federation_id(council),
        defaults={"name": council.name, "council": council},
    )
    return peer
