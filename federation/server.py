"""Answering other councils. Every signed request is checked in this order, and refused at
the first check it fails with nothing but a reason code:

peer known → key valid → agreement active and covering the purpose → signature (covering
the body's digest and every federation header) → time window → nonce unseen → request id
(the same id with a different body is a conflict, 409; the same id and body gets the
answer already given, so a retry or a redelivered push has no second effect)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from psycopg.types.json import Jsonb

from core.audit import audit_record
from federation import documents, protocol
from federation.client import peer_public_key
from federation.directory.models import FederationPeer, council_federation_id
from federation.models import DataSharingAgreement, Exchange
from federation.selectors import own_council, peer_active
from federation.services import (
    AGREEMENT_PURPOSE,
    agreement_countersigned,
    agreement_received,
    agreement_revoke,
    current_involvements,
    match_person,
    notify_team_of_lookup,
    pointers_for,
    signing_key,
)
from tenants.db import models_from_sql, prepared_cursor

log = logging.getLogger(__name__)
RequestRefused = protocol.RequestRefused


@dataclass
class Incoming:
    """A request that passed every check."""

    peer: FederationPeer
    agreement: DataSharingAgreement | None
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]
    request_id: str
    agreement_id: str
    nonce: str
    purpose: str
    practitioner: str
    # An earlier request with the same id, if any: its body digest and the answer given.
    earlier: Mapping[str, Any] | None = None


# Read on every signed request, so plain statements rather than the ORM's query building.
AGREEMENT_SQL = (
    "SELECT * FROM federation_datasharingagreement WHERE agreement_id = %s AND partner_id = %s "
    "ORDER BY id LIMIT 1"
)
# Two index lookups (nonce; request id), not one OR that reads every exchange with the peer.
SEEN_SQL = (
    "SELECT id, nonce, request_id, body_sha256, status_code, response FROM federation_exchange "
    "WHERE direction = %(direction)s AND peer_id = %(peer)s AND nonce = %(nonce)s "
    "UNION ALL "
    "SELECT id, nonce, request_id, body_sha256, status_code, response FROM federation_exchange "
    "WHERE direction = %(direction)s AND peer_id = %(peer)s AND request_id = %(request_id)s"
)


EXCHANGE_IN_SQL = (
    "INSERT INTO federation_exchange (direction, kind, peer_id, agreement_id, request_id, "
    "nonce, body_sha256, purpose, practitioner, status_code, outcome, payload, response, "
    "person_id, in_reply_to, at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _check(request: HttpRequest, *, needs_agreement: bool) -> Incoming:
    headers = {k: v for k, v in request.headers.items()}
    claimed = protocol.header_values(headers, protocol.FEDERATION_HEADERS)
    council = own_council()
    peer = peer_active(claimed[protocol.HEADER_COUNCIL])
    if peer is None or peer.federation_id == council_federation_id(council):
        raise RequestRefused("unknown_peer", 403)
    key_id = protocol.signature_key_id(headers)
    public_key = peer_public_key(peer, key_id) if key_id else None
    if public_key is None:
        raise RequestRefused("unknown_key", 401)
    agreement = None
    purpose = claimed[protocol.HEADER_PURPOSE]
    if needs_agreement:
        agreement = next(
            iter(
                models_from_sql(
                    DataSharingAgreement,
                    AGREEMENT_SQL,
                    [claimed[protocol.HEADER_AGREEMENT], peer.federation_id],
                )
            ),
            None,
        )
        if agreement is None or not agreement.is_in_force:
            raise RequestRefused("no_agreement_in_force", 403)
        if purpose not in agreement.purposes:
            raise RequestRefused("purpose_not_covered", 403)
    elif purpose != AGREEMENT_PURPOSE:
        raise RequestRefused("purpose_not_covered", 403)
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise RequestRefused("too_large", 413) from exc
    verified = protocol.verify_request(
        method=request.method or "",
        url=request.build_absolute_uri(),
        headers=headers,
        body=body,
        public_key=public_key,
    )
    request_id = claimed[protocol.HEADER_REQUEST_ID]
    seen = [
        {
            "nonce": row.nonce,
            "request_id": row.request_id,
            "body_sha256": row.body_sha256,
            "status_code": row.status_code,
            "response": row.response,
        }
        for row in models_from_sql(
            Exchange,
            SEEN_SQL,
            {
                "direction": Exchange.Direction.IN.value,
                "peer": peer.federation_id,
                "nonce": verified.nonce,
                "request_id": request_id,
            },
        )
    ]
    if any(row["nonce"] == verified.nonce for row in seen):
        raise RequestRefused("replayed", 401)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise RequestRefused("not_json", 400) from exc
    if not isinstance(payload, dict):
        raise RequestRefused("not_json", 400)
    return Incoming(
        peer=peer,
        agreement=agreement,
        headers=headers,
        body=body,
        payload=payload,
        request_id=request_id,
        agreement_id=claimed[protocol.HEADER_AGREEMENT],
        earlier=seen[0] if seen else None,
        nonce=verified.nonce,
        purpose=purpose,
        practitioner=claimed[protocol.HEADER_PRACTITIONER],
    )


def _signed_request(incoming: Incoming) -> dict[str, Any]:
    return {"headers": incoming.headers, "body": incoming.body.decode("utf-8", "replace")}


Handler = Callable[[Incoming], tuple[int, dict[str, Any], int | None]]


def receive(
    request: HttpRequest, *, kind: str, handler: Handler, needs_agreement: bool
) -> tuple[int, dict[str, Any]]:
    """Check a signed request, then let `handler` answer it once: (status, body)."""
    try:
        with transaction.atomic():
            incoming = _check(request, needs_agreement=needs_agreement)
            earlier = incoming.earlier
            if earlier is not None:
                if earlier["body_sha256"] != protocol.body_digest(incoming.body):
                    raise RequestRefused("request_id_reused", 409)
                # A retry of something already done: the same answer, no second effect.
                return earlier["status_code"] or 200, earlier["response"]
            digest = protocol.body_digest(incoming.body)
            status, response, person_id = handler(incoming)
            row: list[Any] = [
                Exchange.Direction.IN.value,
                kind,
                incoming.peer.federation_id,
                incoming.agreement_id,
                incoming.request_id,
                incoming.nonce,
                digest,
                incoming.purpose,
                incoming.practitioner,
                status,
                str(response.get("outcome", "")),
                Jsonb(incoming.payload),
                Jsonb(response),
                person_id,
                str(incoming.payload.get("in_reply_to", ""))[:80],
                timezone.now(),
            ]
            with prepared_cursor() as cursor:
                cursor.execute(EXCHANGE_IN_SQL, row)
            audit_record(
                actor=None,
                action=f"federation_{kind}_received",
                person_id=person_id,
                detail={
                    "peer": incoming.peer.federation_id,
                    "agreement_id": incoming.agreement.agreement_id if incoming.agreement else "",
                    "request": _signed_request(incoming),
                    "response": {"status": status, "body": response},
                },
            )
            return status, response
    except IntegrityError:
        # Two copies of one request raced: the nonce or request id is already taken.
        return _refused(request, kind, RequestRefused("replayed", 409))
    except RequestRefused as refusal:
        return _refused(request, kind, refusal)


def _refused(
    request: HttpRequest, kind: str, refusal: RequestRefused
) -> tuple[int, dict[str, Any]]:
    claimed = protocol.header_values(dict(request.headers), protocol.FEDERATION_HEADERS)
    audit_record(
        actor=None,
        action="federation_refused",
        detail={"kind": kind, "reason": refusal.reason, "claimed": claimed},
    )
    log.info("Refused %s from %s: %s", kind, claimed[protocol.HEADER_COUNCIL], refusal.reason)
    return refusal.status, {"outcome": "refused", "reason": refusal.reason}


# --- Handlers ---------------------------------------------------------------------------------


def answer_lookup(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    agreement = incoming.agreement
    assert agreement is not None
    if not documents.well_formed(documents.Lookup, incoming.payload):
        raise RequestRefused("not_a_lookup", 400)
    keys = incoming.payload["match_keys"]
    outcome, person = match_person(agreement=agreement, keys=keys)
    key = signing_key(own_council())
    answer: dict[str, Any] = {
        "type": "patchwork.lookup-answer",
        "responder": key.federation_id,
        "agreement_id": agreement.agreement_id,
        "request_id": incoming.request_id,
        "issued_at": protocol.timestamp(timezone.now()),
        "outcome": outcome,
        "pointers": [],
    }
    if person is not None:
        involvements = current_involvements(person)
        answer.update(
            pointers_for(person=person, agreement=agreement, key=key, involvements=involvements)
        )
        notify_team_of_lookup(person=person, peer=incoming.peer, involvements=involvements)
    return 200, protocol.sign_document(answer, key), person.pk if person else None


def accept_pointer_update(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    document = incoming.payload
    peer = incoming.peer
    lookup = Exchange.objects.filter(
        direction=Exchange.Direction.OUT,
        kind=Exchange.Kind.LOOKUP,
        peer_id=peer.federation_id,
        request_id=str(document.get("in_reply_to", "")),
    ).first()
    if (
        not documents.well_formed(documents.PointerUpdate, document)
        or document.get("responder") != peer.federation_id
        or lookup is None
        or not protocol.verify_document_signature(
            document, peer.federation_id, lambda kid: peer_public_key(peer, kid)
        )
        or not all(
            protocol.verify_document_signature(
                p, peer.federation_id, lambda kid: peer_public_key(peer, kid)
            )
            for p in document.get("pointers") or []
        )
    ):
        raise RequestRefused("not_a_pointer_update", 400)
    return 200, {"outcome": "applied"}, lookup.person_id


def accept_agreement_offer(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    if not documents.well_formed(documents.AgreementOffer, incoming.payload):
        raise RequestRefused("not_an_agreement_for_us", 400)
    document = incoming.payload["agreement"]
    if document["id"] != incoming.agreement_id:
        raise RequestRefused("not_an_agreement_for_us", 400)
    secret = protocol.unb64(str(incoming.payload.get("match_key_secret", "")))
    agreement_received(
        peer=incoming.peer,
        document=document,
        secret=secret,
        public_key_for=lambda kid: peer_public_key(incoming.peer, kid),
    )
    # The secret is sealed in the agreement; it is not kept in the traffic log.
    incoming.payload = {"type": incoming.payload.get("type"), "agreement": document}
    incoming.body = b""
    return 202, {"outcome": "received"}, None


def accept_countersignature(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    if not documents.well_formed(documents.Countersignature, incoming.payload):
        raise RequestRefused("not_an_agreement_for_us", 400)
    document = incoming.payload["agreement"]
    agreement_countersigned(
        peer=incoming.peer,
        document=document,
        public_key_for=lambda kid: peer_public_key(incoming.peer, kid),
    )
    return 200, {"outcome": "active"}, None


def accept_revocation(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    if not documents.well_formed(documents.Revocation, incoming.payload):
        raise RequestRefused("not_a_revocation", 400)
    agreement = DataSharingAgreement.objects.filter(
        agreement_id=str(incoming.payload.get("agreement_id", "")),
        partner_id=incoming.peer.federation_id,
    ).first()
    if agreement is None:
        raise RequestRefused("no_such_agreement", 404)
    agreement_revoke(
        actor=None,
        agreement=agreement,
        reason=f"Revoked by {incoming.peer.name}: {incoming.payload.get('reason', '')}"[:300],
        by_partner=True,
    )
    return 200, {"outcome": "revoked"}, None
