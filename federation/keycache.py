"""The keys of the councils on this deployment, held in each process's memory for a minute.

Every federation exchange needs the sender's public key (to verify) and the answerer's
private key (to sign). Reading them from the database and opening the sealed private key
on every request was a fifth of an answer's database work. Held here:

- public keys, by council and key id. A key id never changes its key; what changes is its
  validity, and a rotation only ever *retires* a key with a seven-day grace, so a copy up
  to a minute old never accepts a key it should refuse. An unknown key id (a rotation in
  another process) is looked up at once.
- each council's current private key, opened. For up to a minute after a rotation in
  another process this process may still sign with the retired key, which peers accept
  for seven days; a rotation in this process forgets it at once.

Nothing here crosses councils: entries are keyed by the council's id, and a council's
keys are only ever used in its own name."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from federation import protocol, sealing
from federation.directory.models import CouncilSigningKey, council_federation_id
from federation.selectors import RETIRED_KEY_VALID
from tenants.models import Council

TTL_SECONDS = 60.0

_lock = threading.Lock()
_public: dict[int, tuple[float, dict[str, tuple[bytes, datetime | None]]]] = {}
_signing: dict[int, tuple[float, protocol.SigningKey]] = {}


def local_public_key(council_id: int, key_id: str) -> bytes | None:
    """Council `council_id`'s public key `key_id`, if it is its current key or a retired
    one inside its grace period."""
    now = time.monotonic()
    entry = _public.get(council_id)
    if entry is None or now - entry[0] > TTL_SECONDS or key_id not in entry[1]:
        rows = CouncilSigningKey.objects.filter(council_id=council_id).values_list(
            "key_id", "public_key", "retired_at"
        )
        entry = (now, {kid: (bytes(public), retired) for kid, public, retired in rows})
        with _lock:
            _public[council_id] = entry
    found = entry[1].get(key_id)
    if found is None:
        return None
    public, retired_at = found
    if retired_at is not None and retired_at + RETIRED_KEY_VALID <= timezone.now():
        return None
    return public


def current_signing_key(council: Council) -> protocol.SigningKey:
    """The council's current private key, opened."""
    now = time.monotonic()
    entry = _signing.get(council.pk)
    if entry is not None and now - entry[0] <= TTL_SECONDS:
        return entry[1]
    key = (
        CouncilSigningKey.objects.filter(council_id=council.pk, retired_at__isnull=True)
        .order_by("-created_at")
        .first()
    )
    if key is None:
        raise RuntimeError(f"{council} has no signing key")
    opened = opened_key(key, council)
    with _lock:
        _signing[council.pk] = (now, opened)
    return opened


def opened_key(key: CouncilSigningKey, council: Council) -> protocol.SigningKey:
    private = sealing.unseal(
        bytes(key.sealed_private_key), context=sealing.private_key_context(key.key_id)
    )
    return protocol.SigningKey(
        council_federation_id(council), key.key_id, Ed25519PrivateKey.from_private_bytes(private)
    )


def forget(council_id: int | None = None) -> None:
    """Drop what is held (for one council, or all): after a rotation here, and in tests,
    which make and remove many councils in one process."""
    with _lock:
        if council_id is None:
            _public.clear()
            _signing.clear()
        else:
            _public.pop(council_id, None)
            _signing.pop(council_id, None)
