"""Writes for the federation: keys and their published document, council cards and the
peer directory, data-sharing agreements, the match-key index, pointers and the outbox.

Talking to other councils over HTTP lives in `federation.client` (sending) and
`federation.server` (receiving); both call these."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.delivery.notifications import notification_send
from core.models import CouncilPolicy, Person
from federation import agreement_secrets, keycache, protocol, sealing
from federation.directory.models import (
    CouncilSigningKey,
    FederationPeer,
    council_federation_id,
)
from federation.directory.services import (
    council_encryption_key_current,
    council_signing_key_create,
)
from federation.models import DataSharingAgreement, Exchange, MatchKey, OutboxMessage
from federation.selectors import (
    council_valid_keys,
    key_expiry,
    own_council,
    peer_active,
    peer_base_url,
    peer_directory_sync,
)
from tenants.canonical import canonical_json
from tenants.db import current_schema, models_from_sql, prepared_cursor
from tenants.models import Council

KEY_DOCUMENT_VALIDITY = timedelta(days=1)
AGREEMENT_PURPOSE = "agreement"


# --- Keys ---------------------------------------------------------------------------------


def signing_key(council: Council) -> protocol.SigningKey:
    """The council's current private key, opened (held for a minute: federation.keycache)."""
    return keycache.current_signing_key(council)


@transaction.atomic
def council_keys_rotate(*, council: Council) -> CouncilSigningKey:
    """Retire the council's current key and issue a new one. The retired key still
    verifies for seven days (it is published with that expiry), so exchanges signed just
    before the rotation, and peers holding the old key document, keep working."""
    for key in CouncilSigningKey.objects.select_for_update().filter(
        council=council, retired_at__isnull=True
    ):
        key.retired_at = timezone.now()
        key.save(update_fields=["retired_at"])
    created = council_signing_key_create(council=council)
    # This process signs with the new key from now on; others within a minute.
    keycache.forget(council.pk)
    transaction.on_commit(lambda: keycache.forget(council.pk))
    return created


def key_document(council: Council) -> dict[str, Any]:
    """The council's public keys, signed by every one of them still valid, so a peer that
    trusts only an older key learns the new one from the same document."""
    now = timezone.now()
    valid = council_valid_keys(council)
    document: dict[str, Any] = {
        "type": "patchwork.keys",
        "council": council_federation_id(council),
        "issued_at": protocol.timestamp(now),
        "valid_until": protocol.timestamp(now + KEY_DOCUMENT_VALIDITY),
        "keys": [
            {
                "key_id": key.key_id,
                "public_key": protocol.b64(bytes(key.public_key)),
                "fingerprint": protocol.fingerprint(bytes(key.public_key)),
                "expires_at": protocol.timestamp(expiry) if (expiry := key_expiry(key)) else None,
            }
            for key in valid
        ],
        # The X25519 key partners seal agreement secrets to (decision 0016), signed with the rest.
        "encryption_keys": council_encryption_keys_published(council),
    }
    for key in valid:
        document = protocol.sign_document(
            document, keycache.opened_key(key, council), label=key.key_id
        )
    return document


def council_encryption_keys_published(council: Council) -> list[dict[str, Any]]:
    """The council's current X25519 key as its key document and card publish it."""
    key = council_encryption_key_current(council.pk)
    return [agreement_secrets.encryption_key_entry(key)] if key else []


# --- Council cards and the peer directory ----------------------------------------------------


def council_card(council: Council) -> dict[str, Any]:
    """What an operator on another deployment needs to add this council as a peer: its
    id, name, address and key fingerprints, signed with its current key."""
    card: dict[str, Any] = {
        "type": "patchwork.council-card",
        "id": council_federation_id(council),
        "name": council.name,
        "base_url": protocol.base_url_normalised(peer_base_url(FederationPeer(council=council))),
        "issued_at": protocol.timestamp(timezone.now()),
        "keys": [
            {
                "key_id": key.key_id,
                "public_key": protocol.b64(bytes(key.public_key)),
                "fingerprint": protocol.fingerprint(bytes(key.public_key)),
            }
            for key in council_valid_keys(council)
        ],
        "encryption_keys": council_encryption_keys_published(council),
    }
    return protocol.sign_document(card, signing_key(council))


def _card_keys(card: dict[str, Any]) -> dict[str, bytes]:
    found = {}
    for entry in card.get("keys") or []:
        try:
            public = protocol.unb64(str(entry["public_key"]))
        except (KeyError, TypeError, ValueError):
            continue
        if len(public) == 32 and protocol.fingerprint(public) == entry.get("fingerprint"):
            found[str(entry["key_id"])] = public
    return found


@transaction.atomic
def peer_add(*, card: dict[str, Any], actor: User | None = None) -> FederationPeer:
    """Add (or re-add) a council on another deployment from its signed card."""
    if not isinstance(card, dict) or card.get("type") != "patchwork.council-card":
        raise ValidationError("That file is not a Patchwork council card")
    federation_id = str(card.get("id", ""))
    if not federation_id.startswith("council:"):
        raise ValidationError("The card does not say which council it is for")
    keys = _card_keys(card)
    if not keys or not protocol.verify_document_signature(card, federation_id, keys.get):
        raise ValidationError(
            "The card's signature does not match its keys: ask the other deployment's "
            "operator to export it again"
        )
    try:
        base_url = protocol.base_url_normalised(str(card.get("base_url", "")))
    except ValueError as exc:
        raise ValidationError("The card has no web address for the council") from exc
    peer_directory_sync()
    existing = FederationPeer.objects.filter(federation_id=federation_id).first()
    if existing is not None and existing.council is not None:
        raise ValidationError(f"{existing.name} is a council on this deployment already")
    if existing is not None and existing.directory_status in ("active", "suspended"):
        # Decision 0014: for a council the directory lists, the directory wins.
        raise ValidationError(
            f"{existing.name} is in the directory of councils: its address and keys come "
            "from there, not from a card"
        )
    trusted = [
        {"key_id": k, "public_key": protocol.b64(v), "expires_at": None} for k, v in keys.items()
    ]
    peer, _ = FederationPeer.objects.update_or_create(
        federation_id=federation_id,
        defaults={
            "name": str(card.get("name", federation_id))[:120],
            "base_url": base_url,
            "trusted_keys": trusted,
            "card": card,
            "keys_document": None,
            "keys_fetched_at": None,
            "keys_valid_until": None,
            "removed_at": None,
        },
    )
    return peer


@transaction.atomic
def peer_remove(*, peer: FederationPeer) -> FederationPeer:
    """Stop all exchange with the peer at once: its requests are refused from now on."""
    peer.removed_at = timezone.now()
    peer.save(update_fields=["removed_at"])
    return peer


@transaction.atomic
def peer_restore(*, peer: FederationPeer) -> FederationPeer:
    peer.removed_at = None
    peer.save(update_fields=["removed_at"])
    return peer


# --- Data-sharing agreements -------------------------------------------------------------


def agreement_secret_context(agreement_id: str) -> str:
    return f"patchwork:agreement-secret:{agreement_id}"


def agreement_secret(agreement: DataSharingAgreement) -> bytes:
    return sealing.unseal(
        bytes(agreement.sealed_secret), context=agreement_secret_context(agreement.agreement_id)
    )


def _clean_purposes(purposes: Iterable[str]) -> list[str]:
    cleaned = sorted({p.strip() for p in purposes if p.strip()})
    if not cleaned:
        raise ValidationError({"purposes": "Choose at least one purpose"})
    unknown = [p for p in cleaned if p not in protocol.PURPOSES]
    if unknown:
        raise ValidationError({"purposes": f"Choose purposes from the list, not {unknown[0]}"})
    return cleaned


@transaction.atomic
def agreement_propose(
    *,
    actor: User | None,
    partner_id: str,
    purposes: Iterable[str],
    shareable_roles: Iterable[str],
    legal_basis: str,
    demographic_matching: bool,
    valid_from: date,
    valid_until: date,
) -> DataSharingAgreement:
    """Draft an agreement with a partner council. Nothing crosses until both have signed."""
    council = own_council()
    partner = peer_active(partner_id.strip())
    if partner is None or partner.federation_id == council_federation_id(council):
        raise ValidationError({"partner_id": "Choose a council from the directory of peers"})
    roles = sorted({r.strip() for r in shareable_roles if r.strip()})
    if not roles:
        raise ValidationError({"shareable_roles": "Choose at least one role that may be shared"})
    if not legal_basis.strip():
        raise ValidationError({"legal_basis": "Enter the legal basis for sharing"})
    if valid_until <= valid_from:
        raise ValidationError({"valid_until": "The end date must be after the start date"})
    if valid_until < timezone.localdate():
        raise ValidationError({"valid_until": "The end date must be in the future"})
    agreement_id = str(uuid.uuid4())
    document = {
        "type": "patchwork.data-sharing-agreement",
        "id": agreement_id,
        "version": 1,
        "parties": sorted([council_federation_id(council), partner.federation_id]),
        "proposed_by": council_federation_id(council),
        "purposes": _clean_purposes(purposes),
        "legal_basis": legal_basis.strip(),
        "shareable_roles": roles,
        "demographic_matching": bool(demographic_matching),
        "valid_from": valid_from.isoformat(),
        "valid_until": valid_until.isoformat(),
    }
    agreement = DataSharingAgreement.objects.create(
        agreement_id=agreement_id,
        partner_id=partner.federation_id,
        document=document,
        sealed_secret=sealing.seal(
            protocol.new_agreement_secret(), context=agreement_secret_context(agreement_id)
        ),
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="agreement_proposed",
        detail={"agreement_id": agreement_id, "partner": partner.federation_id},
    )
    return agreement


def agreement_signed_document(agreement: DataSharingAgreement) -> dict[str, Any]:
    return {**agreement.document, "signatures": agreement.signatures}


@transaction.atomic
def agreement_sign_here(
    *, actor: User | None, agreement: DataSharingAgreement
) -> DataSharingAgreement:
    """Add this council's signature: the first signature of a draft (then it is offered to
    the partner) or the countersignature of one the partner signed (then it is active)."""
    agreement = DataSharingAgreement.objects.select_for_update().get(pk=agreement.pk)
    council = own_council()
    if agreement.status not in {
        DataSharingAgreement.Status.DRAFT,
        DataSharingAgreement.Status.AWAITING_US,
    }:
        raise ValidationError("This agreement is not waiting for our signature")
    if agreement.is_expired:
        raise ValidationError("This agreement has passed its end date: propose a new one")
    signed = protocol.sign_document(agreement_signed_document(agreement), signing_key(council))
    agreement.signatures = signed["signatures"]
    if agreement.status == DataSharingAgreement.Status.DRAFT:
        agreement.status = DataSharingAgreement.Status.AWAITING_PARTNER
        action = "agreement_signed"
    else:
        agreement.status = DataSharingAgreement.Status.ACTIVE
        agreement.activated_at = timezone.now()
        action = "agreement_countersigned"
    agreement.save()
    audit_record(
        actor=actor,
        action=action,
        detail={"agreement_id": agreement.agreement_id, "document": signed},
    )
    if agreement.status == DataSharingAgreement.Status.ACTIVE:
        match_keys_rebuild(agreement=agreement)
    return agreement


@transaction.atomic
def agreement_received(
    *, peer: FederationPeer, document: dict[str, Any], secret: bytes, public_key_for: Any
) -> DataSharingAgreement:
    """A partner offered an agreement it has signed: keep it for our IG officer to sign."""
    council = own_council()
    if (
        document.get("type") != "patchwork.data-sharing-agreement"
        or sorted(document.get("parties") or [])
        != sorted([council_federation_id(council), peer.federation_id])
        or document.get("proposed_by") != peer.federation_id
        or len(secret) != 32
    ):
        raise protocol.RequestRefused("not_an_agreement_for_us", 400)
    if not protocol.verify_document_signature(document, peer.federation_id, public_key_for):
        raise protocol.RequestRefused("agreement_not_signed", 400)
    agreement_id = str(document["id"])
    if DataSharingAgreement.objects.filter(agreement_id=agreement_id).exists():
        raise protocol.RequestRefused("agreement_exists", 409)
    agreement = DataSharingAgreement.objects.create(
        agreement_id=agreement_id,
        version=int(document.get("version", 1)),
        partner_id=peer.federation_id,
        document={k: v for k, v in document.items() if k != "signatures"},
        signatures=document["signatures"],
        status=DataSharingAgreement.Status.AWAITING_US,
        proposed_here=False,
        sealed_secret=sealing.seal(secret, context=agreement_secret_context(agreement_id)),
    )
    audit_record(
        actor=None,
        action="agreement_received",
        detail={"agreement_id": agreement_id, "partner": peer.federation_id, "document": document},
    )
    return agreement


@transaction.atomic
def agreement_countersigned(
    *, peer: FederationPeer, document: dict[str, Any], public_key_for: Any
) -> DataSharingAgreement:
    """The partner countersigned the agreement we offered: it is active from now."""
    council = own_council()
    agreement = (
        DataSharingAgreement.objects.select_for_update()
        .filter(agreement_id=str(document.get("id", "")), partner_id=peer.federation_id)
        .first()
    )
    if agreement is None or agreement.status != DataSharingAgreement.Status.AWAITING_PARTNER:
        raise protocol.RequestRefused("no_agreement_waiting", 409)
    if {k: v for k, v in document.items() if k != "signatures"} != agreement.document:
        raise protocol.RequestRefused("agreement_changed", 400)
    own_keys = {k.key_id: bytes(k.public_key) for k in council_valid_keys(council)}
    if not (
        protocol.verify_document_signature(document, council_federation_id(council), own_keys.get)
        and protocol.verify_document_signature(document, peer.federation_id, public_key_for)
    ):
        raise protocol.RequestRefused("agreement_not_signed", 400)
    agreement.signatures = document["signatures"]
    agreement.status = DataSharingAgreement.Status.ACTIVE
    agreement.activated_at = timezone.now()
    agreement.save()
    audit_record(
        actor=None,
        action="agreement_activated",
        detail={"agreement_id": agreement.agreement_id, "document": document},
    )
    match_keys_rebuild(agreement=agreement)
    return agreement


@transaction.atomic
def agreement_revoke(
    *, actor: User | None, agreement: DataSharingAgreement, reason: str, by_partner: bool = False
) -> DataSharingAgreement:
    """End an agreement now: no pointer crosses under it again, and its index is emptied."""
    agreement = DataSharingAgreement.objects.select_for_update().get(pk=agreement.pk)
    if agreement.status == DataSharingAgreement.Status.REVOKED:
        return agreement
    if not reason.strip():
        raise ValidationError({"reason": "Say why the agreement is being revoked"})
    agreement.status = DataSharingAgreement.Status.REVOKED
    agreement.revoked_at = timezone.now()
    agreement.revoked_reason = reason.strip()[:300]
    agreement.save()
    MatchKey.objects.filter(agreement=agreement).delete()
    OutboxMessage.objects.filter(
        agreement_id=agreement.agreement_id, delivered_at__isnull=True
    ).update(given_up_at=timezone.now(), last_error="The agreement was revoked")
    audit_record(
        actor=actor,
        action="agreement_revoked",
        detail={
            "agreement_id": agreement.agreement_id,
            "reason": agreement.revoked_reason,
            "by_partner": by_partner,
        },
    )
    return agreement


# --- Re-keying an agreement's match-key secret (decision 0016) --------------------------------


@transaction.atomic
def agreement_rekey_begin(
    *, agreement: DataSharingAgreement, secret: bytes, rekey_id: str, payload: dict[str, Any]
) -> DataSharingAgreement:
    """Keep a new secret and the signed message that carries it to the partner, until the
    partner answers. Nothing changes in use: lookups keep the old secret. If a rekey is
    already waiting, it is kept as it is (it is sent again, byte for byte)."""
    agreement = DataSharingAgreement.objects.select_for_update().get(pk=agreement.pk)
    if agreement.pending_rekey:
        return agreement
    if not agreement.is_in_force:
        raise ValidationError("Only an agreement in force can be re-keyed")
    agreement.pending_sealed_secret = sealing.seal(
        secret, context=agreement_secret_context(agreement.agreement_id)
    )
    agreement.pending_rekey = {
        "rekey_id": rekey_id,
        "request_id": str(uuid.uuid4()),
        "payload": payload,
        "started_at": protocol.timestamp(timezone.now()),
    }
    agreement.save(update_fields=["pending_sealed_secret", "pending_rekey"])
    audit_record(
        actor=None,
        action="agreement_rekey_started",
        detail={
            "agreement_id": agreement.agreement_id,
            "partner": agreement.partner_id,
            "rekey_id": rekey_id,
        },
    )
    return agreement


@transaction.atomic
def agreement_rekey_commit(*, agreement: DataSharingAgreement) -> DataSharingAgreement:
    """The partner accepted the new secret: use it here too, and rebuild the index."""
    agreement = DataSharingAgreement.objects.select_for_update().get(pk=agreement.pk)
    if not agreement.pending_rekey or agreement.pending_sealed_secret is None:
        return agreement
    rekey_id = str(agreement.pending_rekey.get("rekey_id", ""))
    agreement.sealed_secret = bytes(agreement.pending_sealed_secret)
    agreement.pending_sealed_secret = None
    agreement.pending_rekey = None
    agreement.rekeyed_at = timezone.now()
    agreement.save(
        update_fields=["sealed_secret", "pending_sealed_secret", "pending_rekey", "rekeyed_at"]
    )
    count = match_keys_rebuild(agreement=agreement)
    audit_record(
        actor=None,
        action="agreement_rekeyed",
        detail={
            "agreement_id": agreement.agreement_id,
            "partner": agreement.partner_id,
            "rekey_id": rekey_id,
            "by_partner": False,
            "match_keys": count,
        },
    )
    return agreement


@transaction.atomic
def agreement_rekey_abandon(*, agreement: DataSharingAgreement, reason: str) -> None:
    """The partner refused the new secret: forget it; the old one stays in use on both sides."""
    agreement = DataSharingAgreement.objects.select_for_update().get(pk=agreement.pk)
    if not agreement.pending_rekey:
        return
    rekey_id = str(agreement.pending_rekey.get("rekey_id", ""))
    agreement.pending_sealed_secret = None
    agreement.pending_rekey = None
    agreement.save(update_fields=["pending_sealed_secret", "pending_rekey"])
    audit_record(
        actor=None,
        action="agreement_rekey_abandoned",
        detail={
            "agreement_id": agreement.agreement_id,
            "partner": agreement.partner_id,
            "rekey_id": rekey_id,
            "reason": reason[:300],
        },
    )


@transaction.atomic
def agreement_rekey_received(
    *, peer: FederationPeer, agreement: DataSharingAgreement, secret: bytes, rekey_id: str
) -> DataSharingAgreement:
    """The partner sent a new secret for an agreement in force (already opened and checked):
    use it from now, and rebuild the index under it."""
    agreement = DataSharingAgreement.objects.select_for_update().get(pk=agreement.pk)
    agreement.sealed_secret = sealing.seal(
        secret, context=agreement_secret_context(agreement.agreement_id)
    )
    agreement.rekeyed_at = timezone.now()
    agreement.save(update_fields=["sealed_secret", "rekeyed_at"])
    count = match_keys_rebuild(agreement=agreement)
    audit_record(
        actor=None,
        action="agreement_rekeyed",
        detail={
            "agreement_id": agreement.agreement_id,
            "partner": peer.federation_id,
            "rekey_id": rekey_id,
            "by_partner": True,
            "match_keys": count,
        },
    )
    return agreement


# --- Match keys ------------------------------------------------------------------------------


def person_identifiers(person: Person) -> protocol.Identifiers:
    names = [(n.given_name, n.family_name) for n in person.names.all()]
    if not names:
        names = [(person.given_name, person.family_name)]
    return protocol.Identifiers(
        nhs_number=person.nhs_number, date_of_birth=person.date_of_birth, names=tuple(names)
    )


def _keys_rows(agreement: DataSharingAgreement, secret: bytes, person: Person) -> list[MatchKey]:
    # Shielded, archived and merged-away people are never indexed: they can never be matched.
    if person.shielded or person.archived_at is not None or person.merged_into_id is not None:
        return []
    computed = protocol.match_keys(
        person_identifiers(person), secret=secret, demographic=agreement.demographic_matching
    )
    # The NHS-number-with-birth-date key is not indexed: it is only ever compared with the
    # person an NHS number found, and computed then (decision 0013).
    return [
        MatchKey(agreement=agreement, person=person, kind=kind, key=key)
        for kind, values in computed.items()
        if kind in MatchKey.Kind.values
        for key in values
    ]


@transaction.atomic
def match_keys_rebuild(*, agreement: DataSharingAgreement) -> int:
    """Recompute the agreement's whole index; empty unless the agreement is in force."""
    MatchKey.objects.filter(agreement=agreement).delete()
    if not agreement.is_in_force:
        return 0
    secret = agreement_secret(agreement)
    rows: list[MatchKey] = []
    people = Person.objects.filter(
        archived_at__isnull=True, shielded=False, merged_into__isnull=True
    ).prefetch_related("names")
    for person in people.iterator(chunk_size=2000):
        rows.extend(_keys_rows(agreement, secret, person))
    MatchKey.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
    return len(rows)


def match_keys_refresh_person(*, person_id: int) -> None:
    """Bring one person's keys up to date in every agreement in force (after a change to
    the person or their names; a newly shielded person drops out of every index)."""
    person = Person.objects.filter(pk=person_id).prefetch_related("names").first()
    MatchKey.objects.filter(person_id=person_id).delete()
    if person is None:
        return
    for agreement in DataSharingAgreement.objects.filter(status=DataSharingAgreement.Status.ACTIVE):
        if agreement.is_in_force:
            MatchKey.objects.bulk_create(
                _keys_rows(agreement, agreement_secret(agreement), person), ignore_conflicts=True
            )


def match_keys_refresh_people(*, person_ids: list[int]) -> None:
    """`match_keys_refresh_person` for many people at once (a feed import's batch): one
    delete, and keys computed only when an agreement is in force."""
    if not person_ids:
        return
    # One array, not thousands of placeholders: a feed's batch passes thousands of ids.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM federation_matchkey WHERE person_id = ANY(%s)", [person_ids])
    agreements = [
        a
        for a in DataSharingAgreement.objects.filter(status=DataSharingAgreement.Status.ACTIVE)
        if a.is_in_force
    ]
    if not agreements:
        return
    people = Person.objects.filter(pk__in=person_ids).prefetch_related("names")
    for agreement in agreements:
        secret = agreement_secret(agreement)
        rows = [row for person in people for row in _keys_rows(agreement, secret, person)]
        MatchKey.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)


# Run on every answer to another council: a plain statement, not the ORM's join.
# With each person, their name-and-birth keys under the agreement (`demographic_keys`), which
# `_compare_with` compares with the asking council's, and their current involvements as
# CURRENT_INVOLVEMENTS_SQL reads them (`involvements_loaded`): read in the same round trip.
MATCHED_PEOPLE_SQL = """
SELECT p.*, ARRAY(
    SELECT d.key FROM federation_matchkey d
    WHERE d.agreement_id = %(agreement)s AND d.person_id = p.id AND d.kind = %(demographic)s
) AS demographic_keys, (
    SELECT coalesce(json_agg(json_build_array(
        pr.user_id, o.name, o.agency_type, o.phone, o.secure_email, o.sensitive_service,
        i.sensitive, r.name, i.lead_professional, pr.work_phone, pr.secure_email, i.start_date
    ) ORDER BY i.start_date, i.id), '[]'::json)
    FROM core_involvement i
    JOIN core_organisation o ON o.id = i.organisation_id
    JOIN core_involvementrole r ON r.id = i.role_id
    JOIN core_practitioner pr ON pr.id = i.practitioner_id
    WHERE i.person_id = p.id AND i.end_date IS NULL
) AS current_involvements
FROM core_person p WHERE p.id IN (
    SELECT k.person_id FROM federation_matchkey k
    WHERE k.agreement_id = %(agreement)s AND k.kind = %(nhs)s AND k.key = ANY(%(keys)s)
)
"""


@dataclass(frozen=True)
class MatchResult:
    """The answer to a lookup before it is signed: the outcome, the person it concerns (for
    this council's audit; pointers only on a `match`), which identifiers were compared with
    that person and how each came out, and the confidence that follows (decision 0013)."""

    outcome: str
    person: Person | None
    comparisons: dict[str, str]

    @property
    def confidence(self) -> str:
        return protocol.answer_confidence(self.outcome, self.comparisons)


def _nobody(outcome: str) -> MatchResult:
    return MatchResult(outcome, None, protocol.nothing_compared())


def _compare_with(
    *, agreement: DataSharingAgreement, person: Person, keys: dict[str, Any]
) -> MatchResult:
    """The person the NHS number found, compared on name and date of birth where the
    agreement allows it and the asking council sent them."""
    comparisons = {**protocol.nothing_compared(), "nhs_number": protocol.MATCHED}
    demographic = [str(k) for k in keys.get("demographic") or []][:64]
    with_birth = [str(k) for k in keys.get(protocol.NHS_AND_BIRTH_DATE) or []][:4]
    if agreement.demographic_matching and demographic:
        loaded = getattr(person, "demographic_keys", None)  # MATCHED_PEOPLE_SQL read them
        own = (
            set(loaded)
            if loaded is not None
            else set(
                MatchKey.objects.filter(
                    agreement=agreement, person=person, kind=MatchKey.Kind.DEMOGRAPHIC
                ).values_list("key", flat=True)
            )
        )
        if own:
            named = protocol.MATCHED if own.intersection(demographic) else protocol.DIFFERS
            comparisons["name_and_date_of_birth"] = named
            if named == protocol.MATCHED:
                comparisons["date_of_birth"] = protocol.MATCHED
    if (
        agreement.demographic_matching
        and with_birth
        and comparisons["date_of_birth"] == protocol.NOT_COMPARED
        and person.date_of_birth is not None
        and person.nhs_number
    ):
        ours = protocol.nhs_and_birth_date_key(
            agreement_secret(agreement), person.nhs_number, person.date_of_birth
        )
        comparisons["date_of_birth"] = protocol.MATCHED if ours in with_birth else protocol.DIFFERS
    differs = protocol.DIFFERS in comparisons.values()
    return MatchResult(protocol.POSSIBLE_MISMATCH if differs else "match", person, comparisons)


def match_person_compared(*, agreement: DataSharingAgreement, keys: dict[str, Any]) -> MatchResult:
    """One person or none (IHE XCPD), and what was compared. An NHS number decides who; then
    name and date of birth, where the agreement allows and they were sent, confirm it or
    show a possible mismatch (a mistyped NHS number that is another child's here). Without
    an NHS match, a single name-and-birth match where the agreement allows it: a match when
    we know no NHS number for that person, a possible mismatch when we know a different
    one. Several means "ask for more"."""
    nhs = [str(k) for k in keys.get("nhs") or []][:4]
    demographic = [str(k) for k in keys.get("demographic") or []][:64]
    hits = {
        person.pk: person
        for person in models_from_sql(
            Person,
            MATCHED_PEOPLE_SQL,
            {
                "agreement": agreement.pk,
                "nhs": MatchKey.Kind.NHS.value,
                "demographic": MatchKey.Kind.DEMOGRAPHIC.value,
                "keys": nhs,
            },
        )
    }
    if len(hits) > 1:
        return _nobody("more_attributes_requested")
    if hits:
        person = next(iter(hits.values()))
        if person.shielded or person.archived_at is not None:
            return _nobody("no_match")
        return _compare_with(agreement=agreement, person=person, keys=keys)
    if not (agreement.demographic_matching and demographic):
        return _nobody("no_match")
    # Built only here: most answers are decided by the statement above.
    index = MatchKey.objects.filter(agreement=agreement).select_related("person")
    candidates = {
        row.person_id: row.person
        for row in index.filter(kind=MatchKey.Kind.DEMOGRAPHIC, key__in=demographic)
    }
    contradicting: dict[int, Person] = {}
    if nhs and candidates:
        # A candidate whose NHS number we know, and which is not the one asked about, is a
        # different child who shares a name and birthday, or the same child with a
        # mistyped number on one side: never a match.
        known = index.filter(kind=MatchKey.Kind.NHS, person_id__in=list(candidates))
        for person_id in known.values_list("person_id", flat=True):
            contradicting[person_id] = candidates.pop(person_id)
    if len(candidates) > 1:
        return _nobody("more_attributes_requested")
    if candidates:
        person = next(iter(candidates.values()))
        if person.shielded or person.archived_at is not None:
            return _nobody("no_match")
        return MatchResult(
            "match",
            person,
            {
                "nhs_number": protocol.NOT_COMPARED,
                "name_and_date_of_birth": protocol.MATCHED,
                "date_of_birth": protocol.MATCHED,
            },
        )
    if len(contradicting) == 1:
        person = next(iter(contradicting.values()))
        return MatchResult(
            protocol.POSSIBLE_MISMATCH,
            person,
            {
                "nhs_number": protocol.DIFFERS,
                "name_and_date_of_birth": protocol.MATCHED,
                "date_of_birth": protocol.MATCHED,
            },
        )
    return _nobody("no_match")


# --- Pointers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InvolvementFacts:
    """What a pointer or the team's notification needs of one current involvement."""

    user_id: int
    organisation: str
    agency_type: str
    organisation_phone: str
    organisation_email: str
    sensitive_service: bool
    sensitive: bool
    role: str
    lead_professional: bool
    work_phone: str
    secure_email: str
    start_date: date


# Read on every answer to another council: one plain statement, not the ORM's four joins.
CURRENT_INVOLVEMENTS_SQL = """
SELECT pr.user_id, o.name, o.agency_type, o.phone, o.secure_email, o.sensitive_service,
       i.sensitive, r.name, i.lead_professional, pr.work_phone, pr.secure_email, i.start_date
FROM core_involvement i
JOIN core_organisation o ON o.id = i.organisation_id
JOIN core_involvementrole r ON r.id = i.role_id
JOIN core_practitioner pr ON pr.id = i.practitioner_id
WHERE i.person_id = %s AND i.end_date IS NULL
ORDER BY i.start_date, i.id
"""


def current_involvements(person: Person) -> list[InvolvementFacts]:
    """The person's current involvements, with what pointers and notifications need."""
    with prepared_cursor() as cursor:
        cursor.execute(CURRENT_INVOLVEMENTS_SQL, [person.pk])
        return [InvolvementFacts(*row) for row in cursor.fetchall()]


def involvements_loaded(person: Person) -> list[InvolvementFacts] | None:
    """The current involvements read with a person found by `match_person_compared`
    (MATCHED_PEOPLE_SQL), as `current_involvements` gives them; None for a person loaded
    otherwise."""
    loaded = getattr(person, "current_involvements", None)
    if loaded is None:
        return None
    facts = []
    for row in loaded:
        values: list[Any] = list(row)
        values[-1] = date.fromisoformat(values[-1])  # JSON's start_date
        facts.append(InvolvementFacts(*values))
    return facts


def pointers_for(
    *,
    person: Person,
    agreement: DataSharingAgreement,
    key: protocol.SigningKey,
    involvements: list[InvolvementFacts] | None = None,
) -> dict[str, Any]:
    """The signed pointers to a person's current involvements that the agreement lets
    cross. Sensitive involvements never cross: at most a flag and the duty team's contact.
    `involvements`: the person's `current_involvements`, if the caller has them already."""
    now = protocol.timestamp(timezone.now())
    roles = set(agreement.shareable_roles)
    if involvements is None:
        involvements = current_involvements(person)
    pointers, cores, sensitive = [], [], False
    for involvement in involvements:
        if involvement.sensitive or involvement.sensitive_service:
            sensitive = True
            continue
        if involvement.role not in roles:
            continue
        core = {
            "organisation": involvement.organisation,
            "agency_type": involvement.agency_type,
            "role": involvement.role,
            "lead_professional": involvement.lead_professional,
            "contact": {
                "phone": involvement.work_phone or involvement.organisation_phone,
                "email": involvement.secure_email or involvement.organisation_email,
            },
            "since": involvement.start_date.isoformat(),
        }
        cores.append(core)
        pointers.append(
            protocol.sign_document(
                {
                    "type": "patchwork.pointer",
                    "issuer": key.federation_id,
                    "agreement_id": agreement.agreement_id,
                    **core,
                    "issued_at": now,
                },
                key,
            )
        )
    duty = CouncilPolicy.current().duty_team_contact if sensitive else ""
    digest = hashlib.sha256(canonical_json({"p": cast(Any, cores), "s": sensitive})).hexdigest()
    return {
        "pointers": pointers,
        "sensitive_service_involved": sensitive,
        "duty_team_contact": duty,
        "digest": digest,
    }


def duty_team_contact() -> str:
    """How another council reaches this council's duty team (to check a possible mismatch)."""
    return CouncilPolicy.current().duty_team_contact


def notify_team_of_lookup(
    *, person: Person, peer: FederationPeer, involvements: list[InvolvementFacts] | None = None
) -> None:
    """Tell the person's current team here that another council looked for them."""
    if involvements is None:
        involvements = current_involvements(person)
    notification_send(
        recipients=[inv.user_id for inv in involvements],
        person=person,
        kind="federation_lookup",
        text=f"{peer.name} asked whether anyone here is involved with {person.full_name}",
    )


def practitioner_pseudonym(user: User) -> str:
    """A stable, meaningless id for the practitioner who asked: the other council can tell
    repeat lookups apart in its audit, and can ask us who it was, but learns no name."""
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"{current_schema()}:{user.pk}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:32]


# --- Pushes through the outbox ------------------------------------------------------------------


def involvements_changed_bulk(*, person_ids: list[int]) -> list[OutboxMessage]:
    """`involvement_changed` for the people, among many, whom a peer has matched before: one
    query finds them, so a feed's batch costs nothing more when no peer has asked."""
    if not person_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT person_id FROM federation_exchange WHERE direction = %s "
            "AND kind = %s AND outcome = 'match' AND person_id = ANY(%s)",
            [Exchange.Direction.IN, Exchange.Kind.LOOKUP, person_ids],
        )
        matched = sorted(row[0] for row in cursor.fetchall())
    queued: list[OutboxMessage] = []
    for person_id in matched:
        queued.extend(involvement_changed(person_id=person_id))
    return queued


def involvement_changed(*, person_id: int) -> list[OutboxMessage]:
    """Queue a pointer update for every peer that matched this person earlier, when what it
    would be told has changed. Runs inside the transaction of the change (transactional
    outbox): the update is queued if and only if the change is committed."""
    person = Person.objects.filter(pk=person_id).first()
    if person is None or person.shielded:
        return []
    council = own_council()
    key: protocol.SigningKey | None = None
    queued = []
    matched = (
        Exchange.objects.filter(
            direction=Exchange.Direction.IN,
            kind=Exchange.Kind.LOOKUP,
            outcome="match",
            person_id=person_id,
        )
        .order_by("peer_id", "agreement_id", "-at")
        .distinct("peer_id", "agreement_id")
    )
    for lookup in matched:
        agreement = DataSharingAgreement.objects.filter(agreement_id=lookup.agreement_id).first()
        if agreement is None or not agreement.is_in_force or peer_active(lookup.peer_id) is None:
            continue
        key = key or signing_key(council)
        snapshot = pointers_for(person=person, agreement=agreement, key=key)
        last = (
            OutboxMessage.objects.filter(peer_id=lookup.peer_id, in_reply_to=lookup.request_id)
            .order_by("-id")
            .first()
        )
        previous = last.payload.get("digest") if last else lookup.response.get("digest")
        if previous == snapshot["digest"]:
            continue
        document = protocol.sign_document(
            {
                "type": "patchwork.pointer-update",
                "responder": council_federation_id(council),
                "agreement_id": agreement.agreement_id,
                "in_reply_to": lookup.request_id,
                "purpose": lookup.purpose,
                "issued_at": protocol.timestamp(timezone.now()),
                **snapshot,
            },
            key,
        )
        queued.append(
            OutboxMessage.objects.create(
                idempotency_key=str(uuid.uuid4()),
                peer_id=lookup.peer_id,
                agreement_id=agreement.agreement_id,
                in_reply_to=lookup.request_id,
                payload=document,
                person=person,
            )
        )
    return queued
