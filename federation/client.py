"""Talking to other councils: fetching and caching their key documents, offering and
countersigning agreements, the practitioner's parallel "who is involved?" fan-out, and
delivering the outbox. Councils on this deployment are reached the same way, over HTTP."""

from __future__ import annotations

import http.client
import json
import logging
import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from accounts.models import User
from core.audit import audit_record
from core.selectors import person_viewable
from federation import agreement_secrets, keycache, protocol
from federation.directory.models import (
    CouncilSigningKey,
    DirectoryDocument,
    FederationPeer,
    council_federation_id,
)
from federation.directory.selectors import peer_held_by_directory
from federation.directory.services import directory_receive, directory_refused
from federation.models import DataSharingAgreement, Exchange, OutboxMessage
from federation.selectors import (
    PeerAnswer,
    agreements_in_force,
    answer_from_document,
    own_council,
    peer_active,
    peer_base_url,
    peers_active_with_urls,
)
from federation.services import (
    AGREEMENT_PURPOSE,
    agreement_rekey_abandon,
    agreement_rekey_begin,
    agreement_rekey_commit,
    agreement_secret,
    agreement_sign_here,
    agreement_signed_document,
    person_identifiers,
    practitioner_pseudonym,
    signing_key,
)
from tenants.canonical import canonical_json
from tenants.db import prepared_cursor

log = logging.getLogger(__name__)

KEYS_PATH = "/.well-known/patchwork/keys"
LOOKUP_PATH = "/federation/v1/who-is-involved"
OFFER_PATH = "/federation/v1/agreements/offer"
COUNTERSIGN_PATH = "/federation/v1/agreements/countersign"
REVOKE_PATH = "/federation/v1/agreements/revoke"
REKEY_PATH = "/federation/v1/agreements/rekey"
POINTER_UPDATE_PATH = "/federation/v1/pointer-updates"
BATCH_PATH = "/federation/v1/batch"
ANSWER_OUTCOMES = protocol.ANSWER_OUTCOMES
# An unknown key id makes us refetch a peer's key document, but not more often than this.
KEY_REFETCH_INTERVAL = timedelta(seconds=30)


def lookup_timeout() -> float:
    return settings.FEDERATION_LOOKUP_TIMEOUT_SECONDS


# Agreements and pushes are not waited on by a practitioner: they may take longer.
DELIVERY_TIMEOUT = 20.0


def _address(url: str) -> tuple[str, dict[str, str]]:
    """Where to connect for `url`. Names under .localhost are loopback (RFC 6761), which
    the system resolver here does not know: connect to 127.0.0.1 and keep the Host."""
    parts = urlsplit(url)
    if parts.hostname and parts.hostname.endswith(".localhost"):
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc}
    return url, {}


# Building a TLS context reads the CA bundle (tens of milliseconds): once per process.
_TLS = ssl.create_default_context()
# An answer is a key document, an acknowledgement or a few signed pointers: anything much
# larger is not an answer.
MAX_ANSWER_BYTES = 1_000_000


@dataclass(frozen=True)
class PeerResponse:
    status_code: int
    content: bytes
    # An answer that came inside a batch (federation.batching) is already parsed.
    document: Any = None

    def json(self) -> Any:
        return self.document if self.document is not None else json.loads(self.content)


class NoAnswer(Exception):
    """The peer gave no HTTP answer: no connection, a timeout, a broken-off or oversized
    answer. The message is the kind of failure, for the outbox's last error."""


def http_request(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> PeerResponse:
    """Every request to another council goes through here, on a connection of its own, with
    the standard library's HTTP client: a shared, pooled httpx client measured slower in the
    "who is involved?" fan-out, whose asking process is on every check's critical path
    (docs/benchmarks.md). `timeout` bounds every network operation (connect, send, each
    read). Raises NoAnswer."""
    address, extra = _address(url)
    parts = urlsplit(address)
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=_TLS)
        if parts.scheme == "https"
        else http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    )
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers={**(headers or {}), **extra})
        response = connection.getresponse()
        content = response.read(MAX_ANSWER_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise NoAnswer(type(exc).__name__) from exc
    finally:
        connection.close()
    if len(content) > MAX_ANSWER_BYTES:
        raise NoAnswer("AnswerTooLarge")
    return PeerResponse(response.status, content)


def http_get(url: str, *, timeout: float) -> PeerResponse:
    return http_request("GET", url, timeout=timeout)


def http_post(url: str, *, headers: dict[str, str], body: bytes, timeout: float) -> PeerResponse:
    return http_request("POST", url, headers=headers, body=body, timeout=timeout)


# --- Peers' keys -------------------------------------------------------------------------------


def _unexpired(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    now = timezone.now()
    return {
        str(e["key_id"]): protocol.unb64(str(e["public_key"]))
        for e in entries
        if not e.get("expires_at") or protocol.parse_timestamp(str(e["expires_at"])) > now
    }


def _remote_keys(peer: FederationPeer) -> dict[str, bytes]:
    if peer.keys_document and peer.keys_valid_until and peer.keys_valid_until > timezone.now():
        return _unexpired(peer.keys_document.get("keys", []))
    return _unexpired(peer.trusted_keys)


def peer_keys_refresh(peer: FederationPeer) -> bool:
    """Fetch the peer's key document; accept it only if it is about this peer, valid for at
    most seven days and signed by a key we already trust. Returns whether it was accepted."""
    FederationPeer.objects.filter(pk=peer.pk).update(keys_fetched_at=timezone.now())
    peer.keys_fetched_at = timezone.now()
    try:
        response = http_get(peer_base_url(peer) + KEYS_PATH, timeout=lookup_timeout())
        document = response.json()
        issued = protocol.parse_timestamp(str(document["issued_at"]))
        valid_until = protocol.parse_timestamp(str(document["valid_until"]))
        keys = document["keys"]
    except (NoAnswer, ValueError, KeyError, TypeError):
        log.warning("Could not fetch the key document of %s", peer)
        return False
    trusted = _remote_keys(peer) | _unexpired(peer.trusted_keys)
    if (
        document.get("council") != peer.federation_id
        or valid_until - issued > protocol.KEY_DOCUMENT_MAX_VALIDITY
        or valid_until <= timezone.now()
        or not protocol.verify_any_signature(document, trusted.get)
    ):
        log.warning("Refused the key document of %s", peer)
        return False
    peer.keys_document = document
    peer.keys_valid_until = valid_until
    peer.trusted_keys = [
        {"key_id": k["key_id"], "public_key": k["public_key"], "expires_at": k.get("expires_at")}
        for k in keys
    ]
    peer.save(update_fields=["keys_document", "keys_valid_until", "trusted_keys"])
    return True


def peer_public_key(peer: FederationPeer, key_id: str) -> bytes | None:
    """The peer's public key `key_id`, if it is one of the peer's keys and still valid.
    A council on this deployment: from the platform's own key table. Elsewhere: from its
    cached key document, refetched before it expires or when a new key id appears."""
    if peer.council_id is not None:
        return keycache.local_public_key(peer.council_id, key_id)
    now = timezone.now()
    keys = _remote_keys(peer)
    stale = peer.keys_valid_until is None or (peer.keys_valid_until - now) < timedelta(hours=6)
    may_fetch = peer.keys_fetched_at is None or now - peer.keys_fetched_at > KEY_REFETCH_INTERVAL
    if (stale or key_id not in keys) and may_fetch and peer_keys_refresh(peer):
        keys = _remote_keys(peer)
    return keys.get(key_id)


def peer_encryption_key(peer: FederationPeer) -> tuple[str, bytes] | None:
    """The X25519 key (key id, raw public key) the peer publishes for secrets sealed to it
    (decision 0016), read only from what its signing keys signed: for a council on this
    deployment, the platform's own table; elsewhere its key document, fetched afresh and
    verified by `peer_keys_refresh`, else the last verified one still valid, else the
    signed card the operator added it from."""
    if peer.council_id is not None:
        return agreement_secrets.local_encryption_key(peer.council_id)
    peer_keys_refresh(peer)
    if peer.keys_document and peer.keys_valid_until and peer.keys_valid_until > timezone.now():
        found = agreement_secrets.encryption_key_from_entries(
            peer.keys_document.get("encryption_keys")
        )
        if found is not None:
            return found
    return agreement_secrets.encryption_key_from_entries((peer.card or {}).get("encryption_keys"))


def own_public_key(key_id: str) -> bytes | None:
    key = CouncilSigningKey.objects.filter(council=own_council(), key_id=key_id).first()
    return bytes(key.public_key) if key else None


# --- Sending one signed request ------------------------------------------------------------------


@dataclass
class SignedRequest:
    """A request to a peer, signed (RFC 9421) and ready to send as it is. Not called
    "prepared": in this code base that is a statement PostgreSQL has planned
    (`tenants.db.prepared_cursor`), and in http-message-signatures a signature base not
    yet signed (`HTTPMessageSigner.prepare`)."""

    peer: FederationPeer
    agreement_id: str
    kind: str
    url: str
    payload: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    request_id: str
    purpose: str
    practitioner: str


def signed_request(
    *,
    peer: FederationPeer,
    path: str,
    kind: str,
    agreement_id: str,
    payload: dict[str, Any],
    purpose: str,
    practitioner: str = "system",
    request_id: str | None = None,
    key: protocol.SigningKey | None = None,
    base_url: str | None = None,
) -> SignedRequest:
    """The payload as canonical JSON, signed by this council's key for `peer`."""
    url = (base_url or peer_base_url(peer)) + path
    body = canonical_json(payload)
    request_id = request_id or str(uuid.uuid4())
    headers = protocol.sign_request(
        url=url,
        body=body,
        key=key or signing_key(own_council()),
        agreement_id=agreement_id,
        request_id=request_id,
        practitioner=practitioner,
        purpose=purpose,
    )
    return SignedRequest(
        peer, agreement_id, kind, url, payload, body, headers, request_id, purpose, practitioner
    )


def _record_sent(
    outgoing: SignedRequest,
    *,
    status: int | None,
    outcome: str,
    response: dict[str, Any],
    user: User | None = None,
    person_id: int | None = None,
) -> None:
    """Both ends keep the signed request and the answer: here, in the audit chain and the
    traffic table."""
    with transaction.atomic():
        # A message sent again (a redelivered push) updates its one row of traffic.
        Exchange.objects.update_or_create(
            direction=Exchange.Direction.OUT,
            peer_id=outgoing.peer.federation_id,
            request_id=outgoing.request_id,
            defaults={
                "kind": outgoing.kind,
                "agreement_id": outgoing.agreement_id,
                "nonce": "",
                "body_sha256": protocol.body_digest(outgoing.body),
                "purpose": outgoing.purpose,
                "practitioner": outgoing.practitioner,
                "status_code": status,
                "outcome": outcome,
                "payload": outgoing.payload,
                "response": response,
                "person_id": person_id,
                "user": user,
            },
        )
        audit_record(
            actor=user,
            action=f"federation_{outgoing.kind}_sent",
            person_id=person_id,
            detail={
                "peer": outgoing.peer.federation_id,
                "agreement_id": outgoing.agreement_id,
                "request": {
                    "url": outgoing.url,
                    "headers": outgoing.headers,
                    "body": outgoing.body.decode(),
                },
                "response": {"status": status or 0, "body": response},
            },
        )


def send(
    outgoing: SignedRequest, *, timeout: float | None = None
) -> tuple[int | None, dict[str, Any]]:
    try:
        response = http_post(
            outgoing.url,
            headers=outgoing.headers,
            body=outgoing.body,
            timeout=timeout or lookup_timeout(),
        )
    except NoAnswer as exc:
        return None, {"error": str(exc)}
    try:
        document = response.json()
    except ValueError:
        document = {}
    return response.status_code, document if isinstance(document, dict) else {}


# --- Agreements over federation ------------------------------------------------------------------


class PartnerUnreachable(Exception):
    """The partner council did not accept the message; nothing here was undone."""


def agreement_deliver(*, agreement: DataSharingAgreement) -> None:
    """Send the partner what it is waiting for: our first signature (with the agreement's
    match-key secret) or our countersignature. Raises PartnerUnreachable."""
    peer = peer_active(agreement.partner_id)
    if peer is None:
        raise PartnerUnreachable("The partner council is not in the directory of peers")
    document = agreement_signed_document(agreement)
    if agreement.status == DataSharingAgreement.Status.AWAITING_PARTNER:
        path, kind = OFFER_PATH, Exchange.Kind.AGREEMENT_OFFER
        payload = {
            "type": agreement_secrets.OFFER,
            "agreement": document,
            agreement_secrets.SEALED_FIELD: _sealed_secret(
                agreement, peer, agreement_secret(agreement), message=agreement_secrets.OFFER
            ),
        }
    elif agreement.status == DataSharingAgreement.Status.ACTIVE and not agreement.proposed_here:
        path, kind = COUNTERSIGN_PATH, Exchange.Kind.AGREEMENT_COUNTERSIGN
        payload = {"type": "patchwork.agreement-countersignature", "agreement": document}
    else:
        raise PartnerUnreachable("There is nothing to send for this agreement")
    outgoing = signed_request(
        peer=peer,
        path=path,
        kind=kind,
        agreement_id=agreement.agreement_id,
        payload=payload,
        purpose=AGREEMENT_PURPOSE,
    )
    status, response = send(outgoing, timeout=DELIVERY_TIMEOUT)
    # The secret never goes into our own audit or traffic tables.
    outgoing.payload = {"type": payload["type"], "agreement": document}
    outgoing.body = b""
    _record_sent(
        outgoing, status=status, outcome=str(response.get("outcome", "")), response=response
    )
    if status not in {200, 202}:
        raise PartnerUnreachable(f"{peer.name} did not accept it ({status or 'no answer'})")


def _sealed_secret(
    agreement: DataSharingAgreement,
    peer: FederationPeer,
    secret: bytes,
    *,
    message: str,
    rekey_id: str = "",
) -> dict[str, str]:
    """The secret sealed to the partner's published X25519 key, bound to this message."""
    recipient_key = peer_encryption_key(peer)
    if recipient_key is None:
        raise PartnerUnreachable(
            f"{peer.name} publishes no encryption key to seal the agreement's secret to"
        )
    return agreement_secrets.secret_seal(
        secret,
        recipient_key=recipient_key,
        info=agreement_secrets.secret_info(
            message=message,
            agreement_id=agreement.agreement_id,
            sender=council_federation_id(own_council()),
            recipient=peer.federation_id,
            rekey_id=rekey_id,
        ),
        aad=agreement_secrets.secret_aad(agreement.document),
    )


def agreement_sign(*, actor: User | None, agreement: DataSharingAgreement) -> DataSharingAgreement:
    """Sign here, then send the partner the signed agreement. If the partner cannot be
    reached the signature stands and `agreement_deliver` can send it again."""
    agreement = agreement_sign_here(actor=actor, agreement=agreement)
    agreement_deliver(agreement=agreement)
    return agreement


def agreement_revoke_notify(*, agreement: DataSharingAgreement) -> bool:
    """Tell the partner an agreement was revoked here (it stops working here regardless)."""
    peer = peer_active(agreement.partner_id)
    if peer is None:
        return False
    outgoing = signed_request(
        peer=peer,
        path=REVOKE_PATH,
        kind=Exchange.Kind.AGREEMENT_REVOKE,
        agreement_id=agreement.agreement_id,
        purpose=AGREEMENT_PURPOSE,
        payload={
            "type": "patchwork.agreement-revocation",
            "agreement_id": agreement.agreement_id,
            "reason": agreement.revoked_reason,
        },
    )
    status, response = send(outgoing, timeout=DELIVERY_TIMEOUT)
    _record_sent(
        outgoing, status=status, outcome=str(response.get("outcome", "")), response=response
    )
    return status == 200


@dataclass(frozen=True)
class RekeyResult:
    """What became of one agreement's rekey: `rekeyed` (both sides use the new secret),
    `pending` (no answer: the old secret stays in use; run the rekey again to resend the
    same message) or `refused` (the partner said no: nothing changed on either side)."""

    agreement_id: str
    outcome: str
    detail: str = ""


def agreement_rekey(*, agreement: DataSharingAgreement) -> RekeyResult:
    """Give an agreement in force a fresh match-key secret, sealed to the partner in a
    signed `patchwork.agreement-rekey` message. The old secret stays in use here until the
    partner has accepted; a rekey left waiting (partner unreachable) is resent unchanged,
    under the same request id, so the partner applies it once however often it is sent."""
    peer = peer_active(agreement.partner_id)
    if peer is None:
        raise PartnerUnreachable("The partner council is not in the directory of peers")
    if not agreement.pending_rekey:
        if not agreement.is_in_force:
            raise ValidationError("Only an agreement in force can be re-keyed")
        secret, rekey_id = protocol.new_agreement_secret(), str(uuid.uuid4())
        payload = {
            "type": agreement_secrets.REKEY,
            "agreement_id": agreement.agreement_id,
            "rekey_id": rekey_id,
            agreement_secrets.SEALED_FIELD: _sealed_secret(
                agreement, peer, secret, message=agreement_secrets.REKEY, rekey_id=rekey_id
            ),
        }
        agreement = agreement_rekey_begin(
            agreement=agreement, secret=secret, rekey_id=rekey_id, payload=payload
        )
    pending = agreement.pending_rekey or {}
    outgoing = signed_request(
        peer=peer,
        path=REKEY_PATH,
        kind=Exchange.Kind.AGREEMENT_REKEY,
        agreement_id=agreement.agreement_id,
        payload=pending["payload"],
        purpose=AGREEMENT_PURPOSE,
        request_id=pending["request_id"],
    )
    status, response = send(outgoing, timeout=DELIVERY_TIMEOUT)
    # The new secret never goes into our own audit or traffic tables, even sealed.
    outgoing.payload = {
        k: v for k, v in outgoing.payload.items() if k != agreement_secrets.SEALED_FIELD
    }
    outgoing.body = b""
    outcome = str(response.get("outcome", ""))
    _record_sent(outgoing, status=status, outcome=outcome, response=response)
    if status == 200 and outcome == "rekeyed":
        agreement_rekey_commit(agreement=agreement)
        return RekeyResult(agreement.agreement_id, "rekeyed")
    if status is not None and 400 <= status < 500 and status not in {408, 429}:
        reason = str(response.get("reason", status))
        agreement_rekey_abandon(agreement=agreement, reason=f"Refused by {peer.name}: {reason}")
        return RekeyResult(agreement.agreement_id, "refused", reason)
    return RekeyResult(
        agreement.agreement_id, "pending", f"{peer.name} did not answer ({status or 'no answer'})"
    )


# --- "Who is involved?" fan-out ------------------------------------------------------------------


def _post_one(outgoing: SignedRequest, timeout: float) -> list[PeerResponse | None]:
    """One POST of the fan-out; None if the peer gave no answer in time."""
    try:
        return [
            http_post(outgoing.url, headers=outgoing.headers, body=outgoing.body, timeout=timeout)
        ]
    except NoAnswer:
        return [None]


def _post_batch(batch: list[SignedRequest], timeout: float) -> list[PeerResponse | None]:
    """Several councils' lookups in one POST to their deployment (federation.batching),
    each request as signed for its own council; one response for each, None for any the
    batch did not answer in a well-formed entry. A deployment that has no batch endpoint
    yet (404, 405: part-way through an upgrade) gets each request on its own instead."""
    first = batch[0]
    base = first.url.removesuffix(LOOKUP_PATH)
    envelope = {
        "type": protocol.BATCH_TYPE,
        "requests": [
            {"target": one.url, "headers": one.headers, "body": one.body.decode("utf-8")}
            for one in batch
        ],
    }
    body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    try:
        response = http_post(
            base + BATCH_PATH,
            headers={"Content-Type": "application/json"},
            body=body,
            timeout=timeout,
        )
    except NoAnswer:
        return [None] * len(batch)
    if response.status_code in (404, 405):
        return [_post_one(one, timeout)[0] for one in batch]
    try:
        document = response.json() if response.status_code == 200 else None
    except ValueError:
        document = None
    entries = document.get("answers") if isinstance(document, dict) else None
    if (
        not isinstance(entries, list)
        or document.get("type") != protocol.BATCH_ANSWERS_TYPE  # type: ignore[union-attr]
        or len(entries) != len(batch)
    ):
        return [None] * len(batch)
    return [
        PeerResponse(entry["status"], b"", entry["body"])
        if isinstance(entry, dict)
        and isinstance(entry.get("status"), int)
        and isinstance(entry.get("body"), dict)
        else None
        for entry in entries
    ]


def _batches(outgoing: list[SignedRequest]) -> list[list[int]]:
    """Which requests of a check leave together. Councils on this deployment are asked in
    batches of at most FEDERATION_BATCH_SIZE (and of no more than an equal share over
    FEDERATION_BATCH_REQUESTS, so that every core of the deployment answers); every other
    council on its own. A batch of one is sent on its own."""
    local = [index for index, one in enumerate(outgoing) if one.peer.is_local]
    alone = [[index] for index, one in enumerate(outgoing) if not one.peer.is_local]
    if not local:
        return alone
    lanes = max(1, settings.FEDERATION_BATCH_REQUESTS)
    size = min(
        protocol.BATCH_MAX_REQUESTS,
        max(1, settings.FEDERATION_BATCH_SIZE),
        -(-len(local) // lanes),
    )
    return [local[start : start + size] for start in range(0, len(local), size)] + alone


def _in_lane(
    lane: threading.Semaphore,
    deadline: float,
    count: int,
    send: Callable[[], list[PeerResponse | None]],
) -> list[PeerResponse | None]:
    """Send once one of the check's lanes to its own deployment is free (at most
    FEDERATION_BATCH_REQUESTS requests in flight there). Small batches taken in turn by
    whichever lane is free first balance the work between the deployment's workers: a
    lane whose worker is shared with another request takes fewer. Nothing is sent once
    the check's deadline has passed: its councils are shown as not checked."""
    if not lane.acquire(timeout=max(0.0, deadline - time.monotonic())):
        return [None] * count
    try:
        if time.monotonic() >= deadline:
            return [None] * count
        return send()
    finally:
        lane.release()


def _verified_answer(
    outgoing: SignedRequest, response: PeerResponse | None
) -> dict[str, Any] | None:
    """The answer document if it is a signed answer to exactly this request; else None."""
    if response is None or response.status_code != 200:
        return None
    peer = outgoing.peer
    keys: dict[str, bytes | None] = {}

    def public_key(key_id: str) -> bytes | None:
        if key_id not in keys:
            keys[key_id] = peer_public_key(peer, key_id)
        return keys[key_id]

    try:
        document = response.json()
    except ValueError:
        return None
    if (
        not isinstance(document, dict)
        or document.get("type") != "patchwork.lookup-answer"
        or document.get("request_id") != outgoing.request_id
        or document.get("responder") != peer.federation_id
        or document.get("outcome") not in ANSWER_OUTCOMES
        or not protocol.verify_document_signature(document, peer.federation_id, public_key)
        # What it says was compared is signed with it, and must agree with its outcome.
        or not protocol.answer_detail_consistent(document, outgoing.payload.get("match_keys") or {})
    ):
        return None
    for pointer in document.get("pointers") or []:
        if (
            not isinstance(pointer, dict)
            or pointer.get("agreement_id") != outgoing.agreement_id
            or not protocol.verify_document_signature(pointer, peer.federation_id, public_key)
        ):
            return None
    return document


# The fan-out's threads, kept for the life of the process: starting a thread per peer per
# check was a sixth of the asking side's CPU. Enough for two checks across every council in
# England and Wales at once in one process; a request that finds every thread busy waits its
# turn, within the same deadline.
FAN_OUT_THREADS = 512
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _fan_out_pool() -> ThreadPoolExecutor:
    """The process's fan-out threads, made on first use (after gunicorn forks a worker)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=FAN_OUT_THREADS, thread_name_prefix="fan-out")
        return _pool


def _collect_until(
    deadline: float,
    sending: dict[Future[list[PeerResponse | None]], list[int]],
    outgoing: list[SignedRequest],
    responses: dict[int, PeerResponse | None],
    documents: dict[int, dict[str, Any] | None],
) -> None:
    """Take each answer as it arrives, verified, until every peer has answered or the
    deadline (the per-peer timeout after the last request left) has passed. A peer that
    accepted the connection and never answers, or answers late, delays nobody else."""
    try:
        for future in as_completed(sending, timeout=max(0.0, deadline - time.monotonic())):
            for index, response in zip(sending[future], future.result(), strict=True):
                responses[index] = response
                documents[index] = _verified_answer(outgoing[index], response)
    except FuturesTimeout:
        pass


EXCHANGE_OUT_SQL = (
    "INSERT INTO federation_exchange (direction, kind, peer_id, agreement_id, request_id, "
    "body_sha256, purpose, practitioner, status_code, outcome, payload, response, person_id, "
    "user_id, at, nonce, in_reply_to) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '', '')"
)


def other_councils_check(*, user: User, person_id: int, purpose: str) -> list[PeerAnswer]:
    """Ask every council we hold an agreement with, in parallel, whether anyone there is
    involved with this person. A council that does not give a signed answer in time is
    shown as "could not be checked", never as "not known"."""
    access = person_viewable(user, person_id)
    if purpose not in protocol.PURPOSES:
        raise ValidationError({"purpose": "Choose why you are checking"})
    person = access.person
    identifiers = person_identifiers(person)
    pseudonym = practitioner_pseudonym(user)
    key = signing_key(own_council())
    peers = {peer.federation_id: (peer, url) for peer, url in peers_active_with_urls()}
    agreements = agreements_in_force(purpose)
    timeout = lookup_timeout()
    outgoing: list[SignedRequest] = []
    responses: dict[int, PeerResponse | None] = {}
    documents: dict[int, dict[str, Any] | None] = {}
    pool = _fan_out_pool()
    sending: dict[Future[list[PeerResponse | None]], list[int]] = {}
    try:
        # Every request is signed first (a few tens of microseconds each), then each leaves
        # on its own or in its deployment's batch, and each answer is verified as it
        # arrives, while slower councils are still answering.
        for agreement in agreements:
            keys = protocol.match_keys(
                identifiers,
                secret=agreement_secret(agreement),
                demographic=agreement.demographic_matching,
            )
            one = signed_request(
                peer=peers[agreement.partner_id][0],
                base_url=peers[agreement.partner_id][1],
                path=LOOKUP_PATH,
                kind=Exchange.Kind.LOOKUP,
                agreement_id=agreement.agreement_id,
                purpose=purpose,
                practitioner=pseudonym,
                payload={"type": "patchwork.lookup", "match_keys": keys},
                key=key,
            )
            outgoing.append(one)
        lane = threading.BoundedSemaphore(max(1, settings.FEDERATION_BATCH_REQUESTS))
        deadline = time.monotonic() + timeout
        for indexes in _batches(outgoing):
            chosen = [outgoing[i] for i in indexes]
            send = (
                partial(_post_one, chosen[0], timeout)
                if len(chosen) == 1
                else partial(_post_batch, chosen, timeout)
            )
            if chosen[0].peer.is_local:
                future = pool.submit(_in_lane, lane, deadline, len(chosen), send)
            else:
                future = pool.submit(send)
            sending[future] = indexes
        _collect_until(deadline, sending, outgoing, responses, documents)
    finally:
        # A peer still silent at the deadline is not waited for: its thread is free again
        # when its socket times out, and its answer, if one ever comes, is not used. A
        # request still queued for a thread (every thread busy) is not sent at all.
        for future in sending:
            future.cancel()
    answers, rows, audited = [], [], []
    now = timezone.now()
    for index, p in enumerate(outgoing):
        response = responses.get(index)
        document = documents.get(index)
        if document is None:
            answer = PeerAnswer(p.peer.federation_id, p.peer.name, "could_not_check", [])
            kept: dict[str, Any] = {"outcome": "could_not_check"}
        else:
            answer = answer_from_document(p.peer.federation_id, p.peer.name, document)
            kept = document
        answer.at = now
        answers.append(answer)
        status = response.status_code if response is not None else None
        rows.append(
            [
                Exchange.Direction.OUT.value,
                p.kind,
                p.peer.federation_id,
                p.agreement_id,
                p.request_id,
                protocol.body_digest(p.body),
                p.purpose,
                p.practitioner,
                status,
                answer.outcome,
                Jsonb(p.payload),
                Jsonb(kept),
                person.pk,
                user.pk,
                now,
            ]
        )
        audited.append(
            {
                "peer": p.peer.federation_id,
                "agreement_id": p.agreement_id,
                "request": {"url": p.url, "headers": p.headers, "body": p.body.decode()},
                "response": {"status": status or 0, "body": kept},
            }
        )
    if outgoing:
        # One audit event for the whole check keeps every signed request and answer.
        with transaction.atomic():
            # One prepared statement run for every row in one round trip (psycopg's
            # pipeline). The ORM's bulk insert sends each column as an array, and psycopg
            # escaped every answer's JSON in those arrays with a regular expression: a
            # third of the asking side's CPU, after the last answer, at 150 councils.
            with prepared_cursor() as cursor:
                cursor.executemany(EXCHANGE_OUT_SQL, rows)
            audit_record(
                actor=user,
                action="federation_lookup_sent",
                person_id=person.pk,
                detail={"purpose": purpose, "exchanges": audited},
            )
    return sorted(answers, key=lambda a: a.peer_name)


# --- The outbox ------------------------------------------------------------------------------


def backoff_delay(attempts: int) -> float:
    """Exponential backoff with jitter: half the step fixed, half random, so many councils
    retrying one peer that was down do not all come back at the same second."""
    base = settings.FEDERATION_BACKOFF_BASE_SECONDS
    ceiling = settings.FEDERATION_BACKOFF_MAX_SECONDS
    step = min(ceiling, base * 2 ** max(0, attempts - 1))
    return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    retry_in: float | None = None


def outbox_deliver(*, peer_id: str, limit: int = 200) -> DeliveryReport:
    """Deliver the peer's due messages in order, one transaction each (a worker killed
    mid-delivery leaves the message undelivered, to be sent again and deduped by the
    receiver). The first failure backs off every message waiting for that peer."""
    delivered = 0
    for _ in range(limit):
        with transaction.atomic():
            message = (
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(
                    peer_id=peer_id,
                    delivered_at__isnull=True,
                    given_up_at__isnull=True,
                    next_attempt_at__lte=timezone.now(),
                )
                .order_by("id")
                .first()
            )
            if message is None:
                return DeliveryReport(delivered)
            peer = peer_active(peer_id)
            agreement = DataSharingAgreement.objects.filter(
                agreement_id=message.agreement_id
            ).first()
            if peer is None and peer_held_by_directory(peer_id):
                # Suspended by the directory of councils (decision 0014): the messages
                # wait, and go if it is made active again; a council that left is given up.
                return _outbox_hold(peer_id)
            if peer is None or agreement is None or not agreement.is_in_force:
                message.given_up_at = timezone.now()
                message.last_error = "The peer was removed or the agreement is no longer in force"
                message.save(update_fields=["given_up_at", "last_error"])
                continue
            outgoing = signed_request(
                peer=peer,
                path=POINTER_UPDATE_PATH,
                kind=Exchange.Kind.POINTER_UPDATE,
                agreement_id=message.agreement_id,
                payload=message.payload,
                purpose=str(message.payload.get("purpose", "")),
                request_id=message.idempotency_key,
            )
            status, response = send(outgoing, timeout=DELIVERY_TIMEOUT)
            message.attempts += 1
            if status == 200:
                message.delivered_at = timezone.now()
                message.last_error = ""
                message.save(update_fields=["attempts", "delivered_at", "last_error"])
                _record_sent(
                    outgoing,
                    status=status,
                    outcome=str(response.get("outcome", "")),
                    response=response,
                    person_id=message.person_id,
                )
                delivered += 1
                continue
            if status is not None and 400 <= status < 500 and status not in {408, 429}:
                # The peer refused it for good (agreement ended there, or a conflict).
                message.given_up_at = timezone.now()
                message.last_error = f"Refused: {response.get('reason', status)}"[:300]
                message.save(update_fields=["attempts", "given_up_at", "last_error"])
                continue
            delay = backoff_delay(message.attempts)
            message.last_error = f"Not delivered ({status or response.get('error', 'no answer')})"[
                :300
            ]
            message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            message.save(update_fields=["attempts", "last_error", "next_attempt_at"])
            OutboxMessage.objects.filter(
                peer_id=peer_id, delivered_at__isnull=True, given_up_at__isnull=True
            ).exclude(pk=message.pk).update(next_attempt_at=message.next_attempt_at)
            return DeliveryReport(delivered, retry_in=delay)
    return DeliveryReport(delivered)


def _outbox_hold(peer_id: str) -> DeliveryReport:
    wait = settings.FEDERATION_DIRECTORY_FETCH_MINUTES * 60.0
    OutboxMessage.objects.filter(
        peer_id=peer_id, delivered_at__isnull=True, given_up_at__isnull=True
    ).update(
        next_attempt_at=timezone.now() + timedelta(seconds=wait),
        last_error="Waiting: the directory of councils has suspended this council",
    )
    return DeliveryReport(0, retry_in=wait)


def outbox_due_peers() -> list[str]:
    return list(
        OutboxMessage.objects.filter(
            delivered_at__isnull=True, given_up_at__isnull=True, next_attempt_at__lte=timezone.now()
        )
        .values_list("peer_id", flat=True)
        .distinct()
    )


# --- The directory of councils (decision 0014) ------------------------------------------------


def directory_fetch() -> DirectoryDocument | None:
    """Fetch the directory of councils from each FEDERATION_DIRECTORY_URLS in turn until one
    gives a directory this deployment accepts (verified and applied by
    `directory_receive`). Every failure is recorded and logged at ERROR; the directory in
    force stays. Returns the last decision, or None when no URL is configured."""
    last = None
    for url in settings.FEDERATION_DIRECTORY_URLS:
        try:
            response = http_get(url, timeout=DELIVERY_TIMEOUT)
        except NoAnswer as exc:
            last = directory_refused(source=url, reason=f"unreachable: {exc}")
            continue
        if response.status_code != 200:
            last = directory_refused(
                source=url, reason=f"http_error: the server answered {response.status_code}"
            )
            continue
        last = directory_receive(content=response.content, source=url)
        if last.decision == DirectoryDocument.Decision.ACCEPTED:
            return last
    return last
