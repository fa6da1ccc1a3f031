"""Writes and reads of the directory: a council's signing keys, and its peer entry."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from federation import protocol, sealing
from federation.directory import governance
from federation.directory.models import (
    CouncilEncryptionKey,
    CouncilSigningKey,
    DirectoryDocument,
    FederationPeer,
    council_federation_id,
)
from federation.directory.selectors import directory_in_force
from tenants.models import Council

log = logging.getLogger("patchwork.federation.directory")
# pg_advisory_xact_lock key: "directory" in ASCII, so it collides with nothing of ours.
DIRECTORY_LOCK = 0x6469726563746F72


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


# --- The signed directory of councils (decision 0014) -----------------------------------------


def _signing_keys(member: dict[str, Any]) -> list[dict[str, Any]]:
    """The member's Ed25519 keys in the shape of `FederationPeer.trusted_keys`."""
    return [
        {"key_id": key["key_id"], "public_key": key["public_key"], "expires_at": None}
        for key in member["keys"]
        if key["algorithm"] == "ed25519"
    ]


def _peer_from_member(
    peer: FederationPeer | None, member: dict[str, Any], sequence: int, now: datetime
) -> tuple[FederationPeer | None, list[str]]:
    """Bring one peer in line with its directory entry; return the peer and what changed."""
    federation_id, status = member["id"], member["status"]
    label = f"{member['name']} ({federation_id})"
    if peer is None:
        if status != "active":
            return None, []
        peer = FederationPeer.objects.create(
            federation_id=federation_id,
            name=member["name"],
            base_url=member["base_url"],
            trusted_keys=_signing_keys(member),
            directory_status=status,
            directory_entry=member,
            directory_sequence=sequence,
        )
        return peer, [f"added {label} at {member['base_url']}"]
    changes = []
    before = peer.directory_entry or {}
    if peer.name != member["name"]:
        changes.append(f"renamed {peer.name} to {member['name']} ({federation_id})")
        peer.name = member["name"]
    if peer.base_url.rstrip("/") != member["base_url"]:
        changes.append(f"{label}: address {peer.base_url or '(none)'} -> {member['base_url']}")
        peer.base_url = member["base_url"]
    if not peer.directory_status or before.get("keys") != member["keys"]:
        # The directory's keys are the trust anchor from now on: a key document the peer
        # published must be signed by one of them to be believed again.
        previous = (
            _signing_keys(before)
            if before
            else [
                {"key_id": k.get("key_id"), "public_key": k.get("public_key"), "expires_at": None}
                for k in peer.trusted_keys
            ]
        )
        if previous != _signing_keys(member):
            changes.append(
                f"{label}: trusted keys now "
                + ", ".join(k["key_id"] for k in _signing_keys(member))
            )
        peer.trusted_keys = _signing_keys(member)
        peer.keys_document = None
        peer.keys_valid_until = None
        peer.keys_fetched_at = None
    if status == "active":
        if peer.removed_at is not None and peer.directory_status in ("suspended", "left"):
            peer.removed_at = None
            changes.append(f"{label} is active again")
        elif peer.removed_at is not None and peer.directory_status != status:
            changes.append(f"{label} is active in the directory but stays removed by the operator")
    elif peer.removed_at is None:
        peer.removed_at = now
        changes.append(f"{label} {status}: exchange stopped")
    elif peer.directory_status != status:
        changes.append(f"{label} {status}")
    if not peer.directory_status:
        changes.append(f"{label} is now governed by the directory (was added from its card)")
    peer.directory_status = status
    peer.directory_entry = member
    peer.directory_sequence = sequence
    peer.save()
    return peer, changes


def directory_apply(*, members: list[dict[str, Any]], sequence: int) -> list[str]:
    """Add, update or stop peers so they match the directory's members; return what
    changed, one line each. Councils on this deployment are the platform's own business and
    are left as they are; a peer added from a card and not listed is left as it is; a peer
    the directory listed before and no longer lists is stopped as one that left."""
    now = timezone.now()
    local = {
        f"council:{code}"
        for code in Council.objects.exclude(schema_name="public").values_list("code", flat=True)
    }
    peers = {
        peer.federation_id: peer
        for peer in FederationPeer.objects.select_for_update().filter(
            federation_id__in=[m["id"] for m in members]
        )
    }
    changes: list[str] = []
    for member in members:
        peer = peers.get(member["id"])
        if member["id"] in local or (peer is not None and peer.council_id is not None):
            continue
        _, changed = _peer_from_member(peer, member, sequence, now)
        changes.extend(changed)
    listed = {m["id"] for m in members}
    for peer in FederationPeer.objects.select_for_update().filter(
        council__isnull=True, directory_status__in=["active", "suspended"]
    ):
        if peer.federation_id in listed:
            continue
        peer.directory_status = "left"
        peer.directory_sequence = sequence
        if peer.removed_at is None:
            peer.removed_at = now
        peer.save(update_fields=["directory_status", "directory_sequence", "removed_at"])
        changes.append(f"{peer.name} ({peer.federation_id}) is no longer listed: exchange stopped")
    return changes


def _record(
    *,
    source: str,
    digest: str,
    decision: str,
    reason: str = "",
    document: Any = None,
    verified: governance.VerifiedDirectory | None = None,
    changes: list[str] | None = None,
    published: bool = False,
) -> DirectoryDocument:
    sequence = document.get("sequence") if isinstance(document, dict) else None
    return DirectoryDocument.objects.create(
        source=source[:500],
        digest=digest,
        decision=decision,
        reason=reason[:300],
        document=document if isinstance(document, dict) else None,
        sequence=sequence if isinstance(sequence, int) and 0 <= sequence < 2**63 else None,
        issued_at=verified.issued_at if verified else None,
        valid_until=verified.valid_until if verified else None,
        changes=changes or [],
        published=published,
    )


def directory_refused(*, source: str, reason: str, content: bytes = b"") -> DirectoryDocument:
    """Record a directory that could not be used (or a fetch that got nothing): an ERROR in
    the log, a row the console and /readyz show; the directory in force stays."""
    log.error("Directory of councils from %s refused: %s", source, reason)
    digest = hashlib.sha256(content).hexdigest() if content else ""
    # The same refusal of the same bytes from the same place, fetch after fetch, is one row
    # (a broken or hostile server must not fill the table): its `checked_at` moves on.
    last = DirectoryDocument.objects.order_by("-received_at", "-id").first()
    if (
        last is not None
        and last.decision == DirectoryDocument.Decision.REFUSED
        and (last.source, last.digest, last.reason) == (source[:500], digest, reason[:300])
    ):
        last.checked_at = timezone.now()
        last.save(update_fields=["checked_at"])
        return last
    document = None
    with contextlib.suppress(ValueError):
        document = json.loads(content) if content else None
    return _record(
        source=source,
        digest=digest,
        decision=DirectoryDocument.Decision.REFUSED,
        reason=reason,
        document=document,
    )


@transaction.atomic
def directory_receive(
    *, content: bytes, source: str, publish: bool = False, now: datetime | None = None
) -> DirectoryDocument:
    """Verify a directory document and, if it is good and not older than the one in force,
    apply it. Returns the row recording the decision (`decision`, `reason`, `changes`); a
    refused document changes no peer. `publish`: this deployment's operator installs it, to
    be served to other deployments."""
    # One directory is applied at a time on a deployment (the beat task, a command).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DIRECTORY_LOCK])
    moment = now or timezone.now()
    try:
        document = json.loads(content)
    except ValueError:
        return directory_refused(
            source=source, reason="not_json: the answer is not JSON", content=content
        )
    try:
        trusted = governance.trusted_governance_keys(settings.FEDERATION_GOVERNANCE_KEYS)
        verified = governance.directory_verify(document, trusted=trusted, now=moment)
    except governance.DirectoryError as exc:
        return directory_refused(source=source, reason=str(exc), content=content)
    # The signed content, not the bytes: a mirror may serve the same directory laid out
    # differently (this deployment serves it re-serialised), and that is the same directory.
    digest = hashlib.sha256(protocol.canonical(document)).hexdigest()
    in_force = directory_in_force()
    if in_force is not None and in_force.sequence is not None:
        if verified.sequence < in_force.sequence:
            return directory_refused(
                source=source,
                reason=f"rollback: sequence {verified.sequence} is older than "
                f"{in_force.sequence}, the one in force",
                content=content,
            )
        if verified.sequence == in_force.sequence:
            if digest != in_force.digest:
                return directory_refused(
                    source=source,
                    reason=f"sequence_reused: a different document with sequence "
                    f"{verified.sequence}, the one in force",
                    content=content,
                )
            # The same document again: enforce it (an operator's restore of a suspended
            # peer does not outlast a fetch), record only the check.
            changes = directory_apply(members=verified.members, sequence=verified.sequence)
            in_force.checked_at = moment
            in_force.published = in_force.published or publish
            in_force.changes = [*in_force.changes, *changes]
            in_force.save(update_fields=["checked_at", "published", "changes"])
            for line in changes:
                log.warning("Directory of councils %s re-applied: %s", in_force.sequence, line)
            return in_force
    changes = directory_apply(members=verified.members, sequence=verified.sequence)
    record = _record(
        source=source,
        digest=digest,
        decision=DirectoryDocument.Decision.ACCEPTED,
        document=document,
        verified=verified,
        changes=changes,
        published=publish,
    )
    log.info(
        "Directory of councils %s accepted from %s (signed by %s, valid until %s): %s",
        verified.sequence,
        source,
        ", ".join(verified.signed_by),
        protocol.timestamp(verified.valid_until),
        "; ".join(changes) or "no change to peers",
    )
    return record
