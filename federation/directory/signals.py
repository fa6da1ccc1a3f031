"""A council saved on the platform joins the peer directory; a new council gets its first
signing key and its X25519 encryption key in the same transaction as the rest of its
onboarding (or its import)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from federation.directory.services import (
    council_encryption_key_create,
    council_peer_ensure,
    council_signing_key_create,
)
from tenants.models import Council


def council_saved(sender: type, instance: Council, created: bool, **kwargs: Any) -> None:
    if instance.is_platform or not instance.pk:
        return
    if created:
        council_signing_key_create(council=instance)
        council_encryption_key_create(council=instance)
    council_peer_ensure(council=instance)


def connect() -> None:
    post_save.connect(council_saved, sender=Council, dispatch_uid="federation-council")
