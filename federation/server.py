"""Answering other councils. Every signed request is checked in this order, and refused at
the first check it fails with nothing but a reason code:

address not limited → peer known → key valid → signature (covering the body's digest and
every federation header) → time window → [the peer is now authenticated] peer not limited →
agreement active and covering the purpose → nonce unseen → request id (the same id with a
different body is a conflict, 409; the same id and body gets the answer already given, so a
retry or a redelivered push has no second effect).

A refusal before the peer is authenticated is anyone's: it is counted (metrics, and against
the client's address, decision 0011) and logged in one short line at most once a minute per
address, never written to the audit chain, which nobody may shorten. An authenticated peer's
refusals are audited, with the claimed headers cut to a bounded length."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from prometheus_client import Counter
from psycopg.types.json import Jsonb

from accounts.ratelimits import (
    FEDERATION_ADDRESS,
    FEDERATION_PEER,
    address_key,
    client_address,
    council_key,
    limit_count,
    limit_take,
    limit_wait,
)
from core.audit import audit_record
from federation import agreement_secrets, documents, protocol, witnessing
from federation.client import peer_public_key
from federation.directory.models import FederationPeer, council_federation_id
from federation.directory.selectors import peer_stopped_reason
from federation.models import DataSharingAgreement, Exchange
from federation.selectors import own_council, peer_active
from federation.services import (
    AGREEMENT_PURPOSE,
    agreement_countersigned,
    agreement_received,
    agreement_rekey_received,
    agreement_revoke,
    current_involvements,
    duty_team_contact,
    involvements_loaded,
    match_person_compared,
    notify_team_of_lookup,
    pointers_for,
    signing_key,
)
from tenants.db import models_from_sql, prepared_cursor

log = logging.getLogger(__name__)
# What a request outside any agreement may be for: the agreement itself, or witnessing the
# audit log (federation.witnessing, decision 0015); each handler checks it holds its own.
# Messages sent outside any agreement state their own purpose: the witness endpoints take
# only `audit`, every agreement message only `agreement`.
PURPOSE_OF_KIND = {
    witnessing.KIND_WITNESS: witnessing.AUDIT_PURPOSE,
    witnessing.KIND_QUERY: witnessing.AUDIT_PURPOSE,
}
RequestRefused = protocol.RequestRefused

REFUSED = Counter(
    "patchwork_federation_refused",
    "Federation requests refused, by kind, reason and whether the peer's signature was good.",
    ["kind", "reason", "authenticated"],
)
# How much of each claimed federation header an authenticated refusal's audit event keeps,
# and how much of the claimed council a log line shows.
CLAIM_MAX_CHARS = 200
LOG_CLAIM_MAX_CHARS = 64
# One detailed log line per address per this many seconds; every refusal is counted.
LOG_EVERY_SECONDS = 60


@dataclass(frozen=True)
class Reply:
    """What the endpoint answers: status, JSON body and, when limited, Retry-After."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None


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
# Two index lookups (nonce; request id), not one OR that reads every exchange with the peer.
SEEN_SQL = (
    "SELECT id, nonce, request_id, body_sha256, status_code, response FROM federation_exchange "
    "WHERE direction = %(direction)s AND peer_id = %(peer)s AND nonce = %(nonce)s "
    "UNION ALL "
    "SELECT id, nonce, request_id, body_sha256, status_code, response FROM federation_exchange "
    "WHERE direction = %(direction)s AND peer_id = %(peer)s AND request_id = %(request_id)s"
)


# The agreement and the earlier exchanges with the same nonce or request id, in one round
# trip (the checks still run in their order, on what it returns): the row is the agreement's,
# or all NULL when there is none, with the earlier exchanges as a JSON array in `seen`.
AGREEMENT_AND_SEEN_SQL = (
    "SELECT a.*, (SELECT coalesce(json_agg(s), '[]'::json) FROM ("
    "SELECT nonce, request_id, body_sha256, status_code, response FROM federation_exchange "
    "WHERE direction = %(direction)s AND peer_id = %(peer)s AND nonce = %(nonce)s "
    "UNION ALL "
    "SELECT nonce, request_id, body_sha256, status_code, response FROM federation_exchange "
    "WHERE direction = %(direction)s AND peer_id = %(peer)s AND request_id = %(request_id)s"
    ") s) AS seen FROM (SELECT 1) AS one LEFT JOIN ("
    "SELECT * FROM federation_datasharingagreement "
    "WHERE agreement_id = %(agreement)s AND partner_id = %(peer)s ORDER BY id LIMIT 1"
    ") a ON true"
)


EXCHANGE_IN_SQL = (
    "INSERT INTO federation_exchange (direction, kind, peer_id, agreement_id, request_id, "
    "nonce, body_sha256, purpose, practitioner, status_code, outcome, payload, response, "
    "person_id, in_reply_to, at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@dataclass(frozen=True)
class Authenticated:
    """A request whose signature, by a known peer's valid key, checked out in time."""

    peer: FederationPeer
    verified: protocol.VerifiedSignature
    headers: dict[str, str]
    claimed: dict[str, str]
    body: bytes


def _unknown_peer_reason(federation_id: str) -> str:
    """`peer_suspended` or `peer_left` for a council the directory of councils stopped
    (decision 0014), else `unknown_peer`. Only read when the request is refused anyway."""
    return peer_stopped_reason(federation_id) or "unknown_peer"


def _authenticate(request: HttpRequest) -> Authenticated:
    headers = {k: v for k, v in request.headers.items()}
    claimed = protocol.header_values(headers, protocol.FEDERATION_HEADERS)
    council = own_council()
    peer = peer_active(claimed[protocol.HEADER_COUNCIL])
    if peer is None or peer.federation_id == council_federation_id(council):
        raise RequestRefused(_unknown_peer_reason(claimed[protocol.HEADER_COUNCIL]), 403)
    key_id = protocol.signature_key_id(headers)
    public_key = peer_public_key(peer, key_id) if key_id else None
    if public_key is None:
        raise RequestRefused("unknown_key", 401)
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
    return Authenticated(peer=peer, verified=verified, headers=headers, claimed=claimed, body=body)


def _check(
    request: HttpRequest, sender: Authenticated, *, needs_agreement: bool, kind: str = ""
) -> Incoming:
    peer, verified, claimed, body = sender.peer, sender.verified, sender.claimed, sender.body
    peer_key = council_key(peer.federation_id)
    # Asked and counted in one round trip (accounts.ratelimits.limit_take).
    wait = limit_take(FEDERATION_PEER, peer_key)
    if wait is not None:
        raise RequestRefused("rate_limited", 429, retry_after=wait)
    agreement = None
    purpose = claimed[protocol.HEADER_PURPOSE]
    request_id = claimed[protocol.HEADER_REQUEST_ID]
    keys = {
        "direction": Exchange.Direction.IN.value,
        "peer": peer.federation_id,
        "nonce": verified.nonce,
        "request_id": request_id,
    }
    seen: list[dict[str, Any]]
    if needs_agreement:
        found = models_from_sql(
            DataSharingAgreement,
            AGREEMENT_AND_SEEN_SQL,
            {**keys, "agreement": claimed[protocol.HEADER_AGREEMENT]},
        )[0]
        seen = list(found.seen)  # type: ignore[attr-defined]
        agreement = found if found.pk is not None else None
        if agreement is None or not agreement.is_in_force:
            raise RequestRefused("no_agreement_in_force", 403)
        if purpose not in agreement.purposes:
            raise RequestRefused("purpose_not_covered", 403)
    elif purpose != PURPOSE_OF_KIND.get(kind, AGREEMENT_PURPOSE):
        raise RequestRefused("purpose_not_covered", 403)
    else:
        seen = [
            {
                "nonce": row.nonce,
                "request_id": row.request_id,
                "body_sha256": row.body_sha256,
                "status_code": row.status_code,
                "response": row.response,
            }
            for row in models_from_sql(Exchange, SEEN_SQL, keys)
        ]
    if any(row["nonce"] == verified.nonce for row in seen):
        raise RequestRefused("replayed", 401)
    payload = protocol.request_payload(body)
    return Incoming(
        peer=peer,
        agreement=agreement,
        headers=sender.headers,
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
    request: HttpRequest,
    *,
    kind: str,
    handler: Handler,
    needs_agreement: bool,
    address_checked: bool = False,
) -> Reply:
    """Check a signed request, then let `handler` answer it once. `address_checked`: the
    client address's limit was asked for the batch this request came in (federation.batching)."""
    wait = None if address_checked else limit_wait(FEDERATION_ADDRESS, address_key(request))
    if wait is not None:
        return _refused(request, kind, RequestRefused("rate_limited", 429, retry_after=wait))
    sender: Authenticated | None = None
    try:
        with transaction.atomic():
            sender = _authenticate(request)
            incoming = _check(request, sender, needs_agreement=needs_agreement, kind=kind)
            earlier = incoming.earlier
            if earlier is not None:
                if earlier["body_sha256"] != protocol.body_digest(incoming.body):
                    raise RequestRefused("request_id_reused", 409)
                # A retry of something already done: the same answer, no second effect.
                return Reply(earlier["status_code"] or 200, earlier["response"])
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
            return Reply(status, response)
    except IntegrityError:
        # Two copies of one request raced: the nonce or request id is already taken.
        return _refused(request, kind, RequestRefused("replayed", 409), sender)
    except RequestRefused as refusal:
        return _refused(request, kind, refusal, sender)


def _refused(
    request: HttpRequest,
    kind: str,
    refusal: RequestRefused,
    sender: Authenticated | None = None,
) -> Reply:
    """Count every refusal; audit only an authenticated peer's (never a rate limit's)."""
    REFUSED.labels(kind, refusal.reason, "yes" if sender else "no").inc()
    reply = Reply(
        refusal.status, {"outcome": "refused", "reason": refusal.reason}, refusal.retry_after
    )
    if sender is None or refusal.reason == "rate_limited":
        if sender is None and refusal.reason != "rate_limited":
            limit_count(FEDERATION_ADDRESS, address_key(request))
        _log_briefly(request, kind, refusal.reason)
        return reply
    claimed = {name: value[:CLAIM_MAX_CHARS] for name, value in sender.claimed.items()}
    audit_record(
        actor=None,
        action="federation_refused",
        detail={
            "kind": kind,
            "reason": refusal.reason,
            "peer": sender.peer.federation_id,
            "claimed": claimed,
        },
    )
    log.info("Refused %s from %s: %s", kind, sender.peer.federation_id, refusal.reason)
    return reply


def _log_briefly(request: HttpRequest, kind: str, reason: str) -> None:
    """One short line per client address a minute at most: a flood of forged requests
    must not fill the logs either. Every refusal is in patchwork_federation_refused."""
    address = client_address(request)
    try:
        first = caches["ratelimit"].add(f"rl:federation-log:{address}", 1, LOG_EVERY_SECONDS)
    except Exception:  # noqa: BLE001 - the cache is down: still log, still briefly
        first = True
    if first:
        claimed = request.headers.get(protocol.HEADER_COUNCIL, "")
        log.warning(
            "Refused federation %s from %s: %s (claims to be %.64r); more from this address "
            "within %ss are counted in patchwork_federation_refused, not logged",
            kind,
            address,
            reason,
            claimed[:LOG_CLAIM_MAX_CHARS],
            LOG_EVERY_SECONDS,
        )


# --- Handlers ---------------------------------------------------------------------------------


def answer_lookup(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    agreement = incoming.agreement
    assert agreement is not None
    # documents.Lookup's checks without DRF (the same documents accepted, tested).
    if not documents.lookup_well_formed(incoming.payload):
        raise RequestRefused("not_a_lookup", 400)
    keys = incoming.payload["match_keys"]
    result = match_person_compared(agreement=agreement, keys=keys)
    outcome, person = result.outcome, result.person
    key = signing_key(own_council())
    answer: dict[str, Any] = {
        "type": "patchwork.lookup-answer",
        "responder": key.federation_id,
        "agreement_id": agreement.agreement_id,
        "request_id": incoming.request_id,
        "issued_at": protocol.timestamp(timezone.now()),
        "outcome": outcome,
        "pointers": [],
        # What was compared and how sure the match is, signed with the rest (decision 0013).
        "comparisons": result.comparisons,
        "confidence": result.confidence,
    }
    if outcome == protocol.POSSIBLE_MISMATCH:
        # Perhaps another child's record: none of its pointers cross and its team is not
        # told; the asking practitioner is pointed to our duty team to check.
        answer["duty_team_contact"] = duty_team_contact()
    elif person is not None:
        # Read with the person by the statement that matched them, else now.
        involvements = involvements_loaded(person)
        if involvements is None:
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
        # Only a lookup answered with a match is followed up: never a possible mismatch.
        or lookup.outcome != "match"
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


def _secret_opened(
    incoming: Incoming,
    *,
    message: str,
    agreement_id: str,
    document: dict[str, Any],
    rekey_id: str = "",
) -> bytes:
    """The match-key secret the message carries, sealed to us (decision 0016): refused with
    a reason if it came in clear, is missing or malformed, or was sealed for another key,
    message, agreement, sender or recipient."""
    council = own_council()
    return agreement_secrets.secret_open(
        incoming.payload,
        private_key_for=lambda key_id: agreement_secrets.own_private_key(council, key_id),
        info=agreement_secrets.secret_info(
            message=message,
            agreement_id=agreement_id,
            sender=incoming.peer.federation_id,
            recipient=council_federation_id(council),
            rekey_id=rekey_id,
        ),
        aad=agreement_secrets.secret_aad(document),
    )


def accept_agreement_offer(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    if agreement_secrets.CLEAR_FIELD in incoming.payload:
        raise RequestRefused("clear_secret_refused", 400)
    if agreement_secrets.SEALED_FIELD not in incoming.payload:
        raise RequestRefused("sealed_secret_missing", 400)
    if not documents.well_formed(documents.AgreementOffer, incoming.payload):
        raise RequestRefused("not_an_agreement_for_us", 400)
    document = incoming.payload["agreement"]
    if document["id"] != incoming.agreement_id:
        raise RequestRefused("not_an_agreement_for_us", 400)
    secret = _secret_opened(
        incoming,
        message=agreement_secrets.OFFER,
        agreement_id=str(document["id"]),
        document=document,
    )
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


def accept_agreement_rekey(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    """The partner gives an agreement in force a new match-key secret (decision 0016): from
    this answer on we match under it; refused, with nothing changed, if it cannot be opened
    or we are re-keying the same agreement ourselves."""
    payload = incoming.payload
    if agreement_secrets.CLEAR_FIELD in payload:
        raise RequestRefused("clear_secret_refused", 400)
    if agreement_secrets.SEALED_FIELD not in payload:
        raise RequestRefused("sealed_secret_missing", 400)
    if (
        not documents.well_formed(documents.AgreementRekey, payload)
        or payload["agreement_id"] != incoming.agreement_id
    ):
        raise RequestRefused("not_a_rekey", 400)
    agreement = (
        DataSharingAgreement.objects.select_for_update()
        .filter(agreement_id=incoming.agreement_id, partner_id=incoming.peer.federation_id)
        .first()
    )
    if agreement is None:
        raise RequestRefused("no_such_agreement", 404)
    if not agreement.is_in_force:
        raise RequestRefused("no_agreement_in_force", 409)
    if agreement.pending_rekey:
        raise RequestRefused("rekey_in_progress", 409)
    rekey_id = str(payload["rekey_id"])
    secret = _secret_opened(
        incoming,
        message=agreement_secrets.REKEY,
        agreement_id=agreement.agreement_id,
        document=agreement.document,
        rekey_id=rekey_id,
    )
    agreement_rekey_received(
        peer=incoming.peer, agreement=agreement, secret=secret, rekey_id=rekey_id
    )
    # The new secret is sealed in the agreement; the message that carried it is not kept.
    incoming.payload = {k: v for k, v in payload.items() if k != agreement_secrets.SEALED_FIELD}
    incoming.body = b""
    return 200, {"outcome": "rekeyed"}, None


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


# --- Witnessed audit (federation.witnessing, decision 0015) ------------------------------------


def _audit_only(incoming: Incoming) -> None:
    if incoming.purpose != witnessing.AUDIT_PURPOSE:
        raise RequestRefused("purpose_not_covered", 403)


def accept_audit_checkpoint(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    """Witness another council's audit checkpoint: countersign it, or refuse it with a
    reason (a contradiction with what we witnessed before is kept as an alert)."""
    _audit_only(incoming)
    reply = witnessing.witness_checkpoint(
        witness=own_council(), peer=incoming.peer, payload=incoming.payload
    )
    return reply.status, reply.body, None


def answer_audit_statement(incoming: Incoming) -> tuple[int, dict[str, Any], int | None]:
    """The newest statement we signed about the asking council's audit log."""
    _audit_only(incoming)
    reply = witnessing.witness_answer(
        witness=own_council(),
        peer=incoming.peer,
        payload=incoming.payload,
        request_id=incoming.request_id,
    )
    return reply.status, reply.body, None
