"""Witnessed audit (decision 0015): each council sends its latest signed audit checkpoint
to partner councils, which check it against what they witnessed before, countersign it and
keep what they signed in their own schema; `verify_audit --witnessed` asks them back.

A council's own database cannot prove that its log was not cut back: whoever controls it
can delete the newest events and the checkpoints that recorded them (decision 0012). A
witness holds its copy where that person cannot reach, signed with a key they do not hold.

Three messages, all signed requests (RFC 9421) with the purpose `audit` and no agreement:
- the council sends `patchwork.audit-witness-request` {checkpoint, intermediate} to
  WITNESS_PATH; the witness answers `patchwork.audit-witness` (its statement, signed) or
  refuses with a reason (an inconsistent or forged checkpoint is also kept as an alert);
- the council sends `patchwork.audit-witness-query` to STATEMENT_PATH; the witness answers
  `patchwork.audit-witness-answer` (signed, naming the request) holding its newest statement
  about that council, if any, and its alerts about it."""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from core.audit import audit_record, audit_verify
from core.models import AuditEvent
from federation import protocol
from federation.checkpoints import (
    CHECKPOINT_TYPE,
    _council_keys,
    _signature_problem,
    audit_checkpoint_latest,
    checkpoint_digest,
)
from federation.client import (
    DELIVERY_TIMEOUT,
    NoAnswer,
    PeerResponse,
    SignedRequest,
    http_post,
    peer_public_key,
    signed_request,
)
from federation.directory.models import FederationPeer, council_federation_id
from federation.models import DataSharingAgreement, Exchange, WitnessAlert, WitnessedCheckpoint
from federation.selectors import peers_active_with_urls
from federation.services import signing_key
from tenants.db import current_schema
from tenants.models import AuditCheckpoint, AuditWitnessStatement, Council

log = logging.getLogger(__name__)

AUDIT_PURPOSE = "audit"
WITNESS_PATH = "/federation/v1/audit/witness"
STATEMENT_PATH = "/federation/v1/audit/witnessed"
KIND_WITNESS = "audit_witness"
KIND_QUERY = "audit_witness_query"
REQUEST_TYPE = "patchwork.audit-witness-request"
STATEMENT_TYPE = "patchwork.audit-witness"
QUERY_TYPE = "patchwork.audit-witness-query"
ANSWER_TYPE = "patchwork.audit-witness-answer"
# At most this many intermediate checkpoints in one request (~500 bytes each); a longer gap
# is closed in several requests.
MAX_INTERMEDIATE = 200
# How many more councils are asked when witnesses give no answer.
EXTRA_TRIES = 2
# The newest alerts a witness returns with its statement.
ALERTS_ANSWERED = 20
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# What the witness's columns hold (and far beyond any real log).
MAX_SEQUENCE = 2**31 - 1
MAX_EVENTS = 2**53

# Why a witness refuses a checkpoint. The first group is a contradiction with what it
# witnessed before, or a forgery: kept as an alert and logged at ERROR.
ALERT_REASONS = {
    "bad_signature": "it does not carry a valid signature of the council's key",
    "rolled_back": "its number is lower than one already witnessed",
    "fork": "another checkpoint with this number was witnessed",
    "fewer_events": "it records fewer events than one already witnessed",
    "broken_link": "its `previous` links do not reach the checkpoint last witnessed",
}
# ...and the sender's to fix, not a sign of tampering.
PLAIN_REASONS = {
    "not_a_checkpoint": "the request holds no well-formed checkpoint",
    "not_your_checkpoint": "the checkpoint is another council's",
    "from_the_future": "the checkpoint is signed later than now",
    "intermediate_needed": "the checkpoints since the one last witnessed are needed",
}


# --- Documents ------------------------------------------------------------------------------


def _well_formed_checkpoint(document: object) -> bool:
    if not isinstance(document, dict) or document.get("type") != CHECKPOINT_TYPE:
        return False
    sequence, events = document.get("sequence"), document.get("events")
    previous = document.get("previous")
    try:
        protocol.parse_timestamp(str(document.get("signed_at")))
    except ValueError:
        return False
    return (
        isinstance(document.get("council"), str)
        and isinstance(sequence, int)
        and not isinstance(sequence, bool)
        and 1 <= sequence <= MAX_SEQUENCE
        and isinstance(events, int)
        and not isinstance(events, bool)
        and 0 <= events <= MAX_EVENTS
        and isinstance(document.get("head_hash"), str)
        and bool(HEX64.match(str(document.get("head_hash"))))
        and (previous is None or (isinstance(previous, str) and bool(HEX64.match(previous))))
        and isinstance(document.get("signatures"), dict)
    )


def statement_digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(protocol.canonical(document)).hexdigest()


# --- The witness's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessReply:
    status: int
    body: dict[str, Any]


def _refusal(reason: str, **extra: Any) -> WitnessReply:
    status = 409 if reason in ALERT_REASONS or reason == "intermediate_needed" else 400
    return WitnessReply(status, {"outcome": "refused", "reason": reason, **extra})


def _alert(
    peer: FederationPeer, reason: str, detail: str, checkpoint: dict[str, Any]
) -> WitnessReply:
    """Keep the refusal, log it at ERROR, answer with its reason code."""
    sequence, events = checkpoint.get("sequence"), checkpoint.get("events")
    WitnessAlert.objects.create(
        peer_id=peer.federation_id,
        reason=reason,
        detail=detail[:500],
        sequence=sequence if isinstance(sequence, int) else None,
        events=events if isinstance(events, int) else None,
        checkpoint=checkpoint,
    )
    log.error(
        "Audit witness: refused checkpoint %s of %s (%s): %s",
        sequence,
        peer.name,
        reason,
        detail,
    )
    return _refusal(reason, detail=detail[:500])


def _statement(*, witness: Council, row: WitnessedCheckpoint, now: datetime) -> dict[str, Any]:
    checkpoint = row.checkpoint
    document = {
        "type": STATEMENT_TYPE,
        "witness": council_federation_id(witness),
        "council": row.peer_id,
        "sequence": row.sequence,
        "events": row.events,
        "head_event_id": checkpoint.get("head_event_id"),
        "head_hash": row.head_hash,
        "checkpoint_digest": row.digest,
        "checkpoint": checkpoint,
        "first_witnessed_at": protocol.timestamp(row.first_witnessed_at),
        "witnessed_at": protocol.timestamp(now),
    }
    return protocol.sign_document(document, signing_key(witness))


def _when(moment: datetime) -> str:
    return protocol.timestamp(moment).replace("T", " ").replace("Z", " UTC")


def witness_checkpoint(
    *, witness: Council, peer: FederationPeer, payload: dict[str, Any]
) -> WitnessReply:
    """Check a checkpoint `peer` sent us against what we witnessed from it before; sign and
    keep a statement about it, or refuse it (a contradiction is kept as an alert). Runs in
    the witness's schema, inside the request's transaction."""
    checkpoint = payload.get("checkpoint")
    intermediate = payload.get("intermediate", [])
    if (
        payload.get("type") != REQUEST_TYPE
        or not _well_formed_checkpoint(checkpoint)
        or not isinstance(intermediate, list)
        or len(intermediate) > MAX_INTERMEDIATE
        or not all(_well_formed_checkpoint(one) for one in intermediate)
    ):
        return _refusal("not_a_checkpoint")
    assert isinstance(checkpoint, dict)
    if checkpoint["council"] != peer.federation_id or any(
        one["council"] != peer.federation_id for one in intermediate
    ):
        return _refusal("not_your_checkpoint")
    now = timezone.now()
    signed_at = protocol.parse_timestamp(str(checkpoint["signed_at"]))
    if signed_at > now + protocol.CLOCK_SKEW:
        return _refusal("from_the_future")
    with connection.cursor() as cursor:
        # Two requests from one council at once would both read the same last checkpoint.
        key = zlib.crc32(f"patchwork-audit-witness:{current_schema()}:{peer.pk}".encode())
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    digest = checkpoint_digest(checkpoint)
    sequence, events = int(checkpoint["sequence"]), int(checkpoint["events"])
    latest = (
        WitnessedCheckpoint.objects.filter(peer_id=peer.federation_id).order_by("-sequence").first()
    )

    def genuine(document: dict[str, Any]) -> bool:
        return protocol.verify_document_signature(
            document, peer.federation_id, lambda kid: peer_public_key(peer, kid)
        )

    if latest is not None and sequence == latest.sequence and digest == latest.digest:
        # The head did not move: countersigned again, a "still at N" statement.
        latest.witnessed_at = now
        latest.statement = _statement(witness=witness, row=latest, now=now)
        latest.save(update_fields=["witnessed_at", "statement"])
        return WitnessReply(200, {"outcome": "witnessed", "statement": latest.statement})
    if not genuine(checkpoint):
        return _alert(
            peer,
            "bad_signature",
            f"checkpoint {sequence} ({events} events) does not carry a valid signature of "
            f"{peer.name}'s key: forged or altered",
            checkpoint,
        )
    if latest is not None:
        held = f"checkpoint {latest.sequence} of {latest.events} events, witnessed on " + _when(
            latest.witnessed_at
        )
        if sequence < latest.sequence:
            return _alert(
                peer,
                "rolled_back",
                f"checkpoint {sequence} ({events} events) was sent after {held}",
                checkpoint,
            )
        if sequence == latest.sequence:
            return _alert(
                peer,
                "fork",
                f"checkpoint {sequence} ({events} events) differs from {held}",
                checkpoint,
            )
        if events < latest.events:
            return _alert(
                peer,
                "fewer_events",
                f"checkpoint {sequence} records {events} events, fewer than {held}",
                checkpoint,
            )
        chain = sorted(intermediate, key=lambda one: int(one["sequence"]))
        wanted = list(range(latest.sequence + 1, sequence))
        if [int(one["sequence"]) for one in chain] != wanted:
            return _refusal("intermediate_needed", witnessed_sequence=latest.sequence)
        before_digest, before_events = latest.digest, latest.events
        for one in [*chain, checkpoint]:
            if one is not checkpoint and not genuine(one):
                return _alert(
                    peer,
                    "bad_signature",
                    f"checkpoint {one['sequence']}, sent on the way to {sequence}, does not "
                    f"carry a valid signature of {peer.name}'s key",
                    checkpoint,
                )
            if one.get("previous") != before_digest:
                return _alert(
                    peer,
                    "broken_link",
                    f"checkpoint {one['sequence']} does not follow the one before it, on the "
                    f"way from {held} to checkpoint {sequence}: a checkpoint was replaced",
                    checkpoint,
                )
            if int(one["events"]) < before_events:
                return _alert(
                    peer,
                    "fewer_events",
                    f"checkpoint {one['sequence']} records {one['events']} events, fewer than "
                    "the one before it",
                    checkpoint,
                )
            before_digest, before_events = checkpoint_digest(one), int(one["events"])
        for one in chain:
            WitnessedCheckpoint.objects.create(
                peer_id=peer.federation_id,
                sequence=int(one["sequence"]),
                events=int(one["events"]),
                head_hash=str(one["head_hash"]),
                digest=checkpoint_digest(one),
                checkpoint=one,
                first_witnessed_at=now,
                witnessed_at=now,
            )
    row = WitnessedCheckpoint(
        peer_id=peer.federation_id,
        sequence=sequence,
        events=events,
        head_hash=str(checkpoint["head_hash"]),
        digest=digest,
        checkpoint=checkpoint,
        first_witnessed_at=now,
        witnessed_at=now,
    )
    row.statement = _statement(witness=witness, row=row, now=now)
    row.save()
    return WitnessReply(200, {"outcome": "witnessed", "statement": row.statement})


def _signed_again(statement: dict[str, Any] | None, witness: Council) -> dict[str, Any] | None:
    """The statement as we signed it, signed again with our current key: a statement signed
    with a key we have since retired (and whose publication has lapsed) must still verify.
    Its content, including when we witnessed, is unchanged."""
    if statement is None:
        return None
    unsigned = {k: v for k, v in statement.items() if k != "signatures"}
    return protocol.sign_document(unsigned, signing_key(witness))


def witness_answer(
    *, witness: Council, peer: FederationPeer, payload: dict[str, Any], request_id: str
) -> WitnessReply:
    """The newest statement we signed about `peer`'s log, and our alerts about it, in an
    answer signed by us and naming the request."""
    if payload.get("type") != QUERY_TYPE or payload.get("council") != peer.federation_id:
        return _refusal("not_a_query")
    newest = (
        WitnessedCheckpoint.objects.filter(peer_id=peer.federation_id, statement__isnull=False)
        .order_by("-sequence")
        .first()
    )
    alerts = [
        {
            "reason": alert.reason,
            "detail": alert.detail,
            "sequence": alert.sequence,
            "events": alert.events,
            "at": protocol.timestamp(alert.at),
        }
        for alert in WitnessAlert.objects.filter(peer_id=peer.federation_id).order_by("-at")[
            :ALERTS_ANSWERED
        ]
    ]
    answer = {
        "type": ANSWER_TYPE,
        "witness": council_federation_id(witness),
        "council": peer.federation_id,
        "request_id": request_id,
        "answered_at": protocol.timestamp(timezone.now()),
        "outcome": "held" if newest else "none",
        "statement": _signed_again(newest.statement, witness) if newest else None,
        "alerts": alerts,
    }
    return WitnessReply(200, protocol.sign_document(answer, signing_key(witness)))


# --- The council's side: choosing witnesses and sending ------------------------------------------


def audit_witnesses_choose(
    council: Council, count: int | None = None
) -> list[tuple[FederationPeer, str]]:
    """The councils that witness `council`'s checkpoints, in the order they are asked: the
    first `count` (every active peer if None) ranked so: those on another deployment first
    (a witness on this deployment shares its database with us, so it cannot stand against
    whoever controls that), then partners with an agreement in force, then the rest; ties
    broken by a hash of both ids, so the load of witnessing spreads evenly and each
    council's choice stays the same from run to run. Runs in the council's schema."""
    us = council_federation_id(council)
    partners = set(
        DataSharingAgreement.objects.filter(
            status=DataSharingAgreement.Status.ACTIVE, revoked_at__isnull=True
        ).values_list("partner_id", flat=True)
    )
    peers = [(peer, url) for peer, url in peers_active_with_urls() if peer.federation_id != us]

    def rank(item: tuple[FederationPeer, str]) -> tuple[bool, bool, str]:
        peer = item[0]
        spread = hashlib.sha256(f"{us}|{peer.federation_id}".encode()).hexdigest()
        return (peer.council_id is not None, peer.federation_id not in partners, spread)

    ranked = sorted(peers, key=rank)
    return ranked if count is None else ranked[:count]


@dataclass(frozen=True)
class WitnessResult:
    peer: FederationPeer
    witnessed: bool
    reason: str = ""
    detail: str = ""
    statement: dict[str, Any] | None = None


def _send(outgoing: SignedRequest, timeout: float) -> PeerResponse | None:
    try:
        return http_post(
            outgoing.url, headers=outgoing.headers, body=outgoing.body, timeout=timeout
        )
    except NoAnswer:
        return None


def _record(outgoing: SignedRequest, response: PeerResponse | None, body: dict[str, Any]) -> None:
    Exchange.objects.create(
        direction=Exchange.Direction.OUT,
        kind=outgoing.kind,
        peer_id=outgoing.peer.federation_id,
        agreement_id="",
        request_id=outgoing.request_id,
        body_sha256=protocol.body_digest(outgoing.body),
        purpose=AUDIT_PURPOSE,
        practitioner=outgoing.practitioner,
        status_code=response.status_code if response else None,
        outcome=str(body.get("outcome", "no_answer"))[:40],
        payload=outgoing.payload,
        response=body,
    )


def _json(response: PeerResponse | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _statement_problem(
    statement: object,
    *,
    peer: FederationPeer,
    council: Council,
    public_key: Callable[[str], bytes | None],
) -> str:
    """Why `statement` is not a genuine statement by `peer` about `council`, or ''."""
    if not isinstance(statement, dict) or statement.get("type") != STATEMENT_TYPE:
        return "it is not a witness statement"
    checkpoint = statement.get("checkpoint")
    if (
        statement.get("witness") != peer.federation_id
        or statement.get("council") != council_federation_id(council)
        or not _well_formed_checkpoint(checkpoint)
    ):
        return "it is not a statement about this council by this witness"
    assert isinstance(checkpoint, dict)
    if (
        statement.get("checkpoint_digest") != checkpoint_digest(checkpoint)
        or statement.get("sequence") != checkpoint.get("sequence")
        or statement.get("events") != checkpoint.get("events")
        or statement.get("head_hash") != checkpoint.get("head_hash")
    ):
        return "its fields do not match the checkpoint it holds"
    try:
        protocol.parse_timestamp(str(statement.get("witnessed_at")))
    except ValueError:
        return "its time is not a time"
    if not protocol.verify_document_signature(statement, peer.federation_id, public_key):
        return f"it does not carry a valid signature of {peer.name}'s key"
    return ""


def _send_one(
    council: Council,
    peer: FederationPeer,
    url: str,
    checkpoint: AuditCheckpoint,
    intermediate: Sequence[dict[str, Any]] = (),
) -> tuple[WitnessResult, dict[str, Any]]:
    try:
        outgoing = signed_request(
            peer=peer,
            base_url=url,
            path=WITNESS_PATH,
            kind=KIND_WITNESS,
            agreement_id="",
            purpose=AUDIT_PURPOSE,
            payload={
                "type": REQUEST_TYPE,
                "checkpoint": checkpoint.document,
                "intermediate": list(intermediate),
            },
            key=signing_key(council),
        )
    except ValueError:
        return WitnessResult(peer, False, "no_answer", "it has no usable address"), {}
    response = _send(outgoing, DELIVERY_TIMEOUT)
    body = _json(response)
    _record(outgoing, response, body)
    if response is None:
        return WitnessResult(peer, False, "no_answer", "no answer"), body
    if response.status_code != 200 or body.get("outcome") != "witnessed":
        return WitnessResult(
            peer,
            False,
            str(body.get("reason", response.status_code))[:40],
            str(body.get("detail", ""))[:500],
        ), body
    statement = body.get("statement")
    problem = _statement_problem(
        statement, peer=peer, council=council, public_key=lambda kid: peer_public_key(peer, kid)
    )
    if (
        not problem
        and isinstance(statement, dict)
        and statement.get("checkpoint_digest") != checkpoint_digest(checkpoint.document)
    ):
        problem = "it is about another checkpoint"
    if problem or not isinstance(statement, dict):
        return WitnessResult(peer, False, "bad_statement", problem), body
    AuditWitnessStatement.objects.update_or_create(
        council=council,
        witness=peer.federation_id,
        sequence=checkpoint.sequence,
        defaults={"statement": statement},
    )
    return WitnessResult(peer, True, statement=statement), body


def audit_witness_send(*, council: Council) -> list[WitnessResult]:
    """Send the council's latest checkpoint to each of its witnesses; a witness that asks
    for the checkpoints since the one it last witnessed gets them (in steps of at most
    MAX_INTERMEDIATE). A witness that gives no answer is replaced by the next in rank, up
    to EXTRA_TRIES more councils, so one council down does not leave us with fewer than
    AUDIT_WITNESSES answers. Runs in the council's schema. Returns one result per council
    asked."""
    latest = audit_checkpoint_latest(council)
    if latest is None:
        return []
    results: list[WitnessResult] = []
    wanted = settings.AUDIT_WITNESSES
    for peer, url in audit_witnesses_choose(council)[: wanted + EXTRA_TRIES]:
        if sum(1 for one in results if one.reason != "no_answer") >= wanted:
            break
        result, body = _send_one(council, peer, url, latest)
        steps = 0
        while result.reason == "intermediate_needed" and steps < 1000:
            steps += 1
            since = body.get("witnessed_sequence")
            if not isinstance(since, int) or since >= latest.sequence:
                break
            upto = min(latest.sequence, since + MAX_INTERMEDIATE + 1)
            rows = {
                row.sequence: row
                for row in AuditCheckpoint.objects.filter(
                    council=council, sequence__gt=since, sequence__lte=upto
                )
            }
            if sorted(rows) != list(range(since + 1, upto + 1)):
                result = WitnessResult(
                    peer,
                    False,
                    "intermediate_needed",
                    f"{peer.name} last witnessed checkpoint {since}, and checkpoints since "
                    "then are missing here",
                )
                break
            top = rows.pop(upto)
            middle = [rows[n].document for n in sorted(rows)]
            result, body = _send_one(council, peer, url, top, middle)
            if result.witnessed and upto < latest.sequence:
                result, body = _send_one(council, peer, url, latest)
        if not result.witnessed:
            log.error(
                "Audit witness: %s did not witness checkpoint %s of %s (%s): %s",
                peer.name,
                latest.sequence,
                council.name,
                result.reason,
                result.detail,
            )
        results.append(result)
    audit_record(
        actor=None,
        action="audit_checkpoint_witnessed",
        detail={
            "sequence": latest.sequence,
            "witnesses": {
                r.peer.federation_id: "witnessed" if r.witnessed else r.reason for r in results
            },
        },
    )
    return results


# --- verify_audit --witnessed -----------------------------------------------------------------


@dataclass
class WitnessView:
    """What one peer said about this council's log."""

    peer: FederationPeer
    answered: bool
    statement: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""


@dataclass
class WitnessedCheck:
    council: Council
    asked: int
    views: list[WitnessView]
    failures: list[str]
    notes: list[str]
    warnings: list[str]

    @property
    def witnesses(self) -> list[WitnessView]:
        return [view for view in self.views if view.statement is not None]

    @property
    def intact(self) -> bool:
        return not self.failures


def _ask(
    council: Council, peers: Sequence[tuple[FederationPeer, str]]
) -> tuple[list[SignedRequest], list[PeerResponse | None]]:
    key = signing_key(council)
    outgoing = []
    for peer, url in peers:
        try:
            outgoing.append(
                signed_request(
                    peer=peer,
                    base_url=url,
                    path=STATEMENT_PATH,
                    kind=KIND_QUERY,
                    agreement_id="",
                    purpose=AUDIT_PURPOSE,
                    payload={"type": QUERY_TYPE, "council": council_federation_id(council)},
                    key=key,
                )
            )
        except ValueError:
            # No usable address (a peer added without one): it cannot answer.
            log.warning("Audit witness: %s has no usable address to ask", peer.name)
    timeout = settings.FEDERATION_LOOKUP_TIMEOUT_SECONDS
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(outgoing)))) as pool:
        responses = list(pool.map(lambda one: _send(one, timeout), outgoing))
    return outgoing, responses


def _view(council: Council, outgoing: SignedRequest, response: PeerResponse | None) -> WitnessView:
    peer = outgoing.peer
    if response is None or response.status_code != 200:
        return WitnessView(peer, False)
    answer = _json(response)

    def public_key(kid: str) -> bytes | None:
        return peer_public_key(peer, kid)

    if (
        answer.get("type") != ANSWER_TYPE
        or answer.get("witness") != peer.federation_id
        or answer.get("council") != council_federation_id(council)
        or answer.get("request_id") != outgoing.request_id
        or not protocol.verify_document_signature(answer, peer.federation_id, public_key)
    ):
        return WitnessView(
            peer, True, problem=f"{peer.name}'s answer is not signed by {peer.name}'s key"
        )
    alerts = [a for a in answer.get("alerts") or [] if isinstance(a, dict)]
    statement = answer.get("statement")
    if statement is None:
        return WitnessView(peer, True, None, alerts)
    problem = _statement_problem(statement, peer=peer, council=council, public_key=public_key)
    if problem:
        return WitnessView(peer, True, None, alerts, f"{peer.name}'s statement: {problem}")
    return WitnessView(peer, True, statement, alerts)


def audit_witnessed_check(*, council: Council) -> WitnessedCheck:
    """Ask every active peer (not only the witnesses chosen now: whoever controls this
    database could change that choice) for the newest statement it holds about this
    council's log; check each statement's signature with the witness's key and the
    checkpoint inside with the council's keys; then check the log still reaches each
    witnessed checkpoint: at least `events` events, the `events`-th with `head_hash`, and
    every event up to it unchanged. Runs from the public schema."""
    peers = [
        (peer, url)
        for peer, url in peers_active_with_urls()
        if peer.federation_id != council_federation_id(council)
    ]
    outgoing, responses = _ask(council, peers)
    views = [
        _view(council, one, response) for one, response in zip(outgoing, responses, strict=True)
    ]
    asked = {one.peer.federation_id for one in outgoing}
    views += [WitnessView(peer, False) for peer, _ in peers if peer.federation_id not in asked]
    failures: list[str] = []
    notes: list[str] = []
    warnings: list[str] = []
    name = council.name
    if not schema_exists(council.schema_name):
        failures.append(f"its schema {council.schema_name} is missing")
        return WitnessedCheck(council, len(peers), views, failures, notes, warnings)
    keys = _council_keys(council)
    held = {
        row.sequence: checkpoint_digest(row.document)
        for row in AuditCheckpoint.objects.filter(council=council)
    }
    with schema_context(council.schema_name):
        chain = audit_verify()
        total = AuditEvent.objects.count()
        for view in views:
            if view.problem:
                failures.append(view.problem)
            for alert in view.alerts:
                warnings.append(
                    f"{view.peer.name} refused a checkpoint from {name} on "
                    f"{str(alert.get('at', '')).replace('T', ' ').replace('Z', ' UTC')} "
                    f"({alert.get('reason')}): {alert.get('detail')}"
                )
            if view.statement is None:
                continue
            found = _statement_against_log(council, view, chain, total, keys=keys, held=held)
            failures.extend(found)
            if not found:
                statement = view.statement
                notes.append(
                    f"{view.peer.name} witnessed checkpoint {statement['sequence']} "
                    f"({statement['events']} events), last on "
                    f"{_statement_time(statement)}: the log still reaches it"
                )
        _record_queries(outgoing, responses, views)
    if len(views) and sum(1 for view in views if view.statement) < 2:
        warnings.append(
            f"only {sum(1 for view in views if view.statement)} of {len(views)} councils "
            f"asked hold a witnessed checkpoint of {name}; at least two are needed"
        )
    elif not views:
        warnings.append(f"there is no other council to ask: {name}'s log is not witnessed")
    silent = [view.peer.name for view in views if not view.answered]
    if silent:
        warnings.append(f"no answer from {', '.join(silent)}")
    return WitnessedCheck(council, len(peers), views, failures, notes, warnings)


def _statement_time(statement: dict[str, Any]) -> str:
    return _when(protocol.parse_timestamp(str(statement["witnessed_at"])))[:-7] + " UTC"


def _statement_against_log(
    council: Council,
    view: WitnessView,
    chain: Any,
    total: int,
    *,
    keys: dict[str, Any],
    held: dict[int, str],
) -> list[str]:
    statement = view.statement
    assert statement is not None
    witness = view.peer.name
    name = council.name
    checkpoint = statement["checkpoint"]
    sequence, events = int(checkpoint["sequence"]), int(checkpoint["events"])
    when = _statement_time(statement)
    problems = []
    forged = _signature_problem(
        council, AuditCheckpoint(council=council, sequence=sequence, document=checkpoint), keys
    )
    if forged:
        problems.append(
            f"the checkpoint {witness} witnessed on {when} ({events} events) is not signed by "
            f"any key of {name} in this database: its keys were replaced ({forged})"
        )
    if held.get(sequence) != checkpoint_digest(checkpoint):
        problems.append(
            f"checkpoint {sequence}, which {witness} witnessed on {when}, is no longer in "
            "this database: checkpoints were deleted or replaced"
        )
    if total < events:
        problems.append(
            f"the audit log of {name} ends at event {total}, but {witness} witnessed a "
            f"checkpoint of {events} events on {when}"
        )
    if chain.first_broken_id is not None and chain.events <= events:
        problems.append(
            f"event {chain.events} (id {chain.first_broken_id}) differs from the checkpoint "
            f"{witness} witnessed on {when} ({chain.problem})"
        )
    elif events and total >= events:
        event = AuditEvent.objects.order_by("id").values_list("id", "hash")[events - 1]
        if event[1] != statement["head_hash"]:
            problems.append(
                f"event {events} (id {event[0]}) differs from the checkpoint {witness} "
                f"witnessed on {when}: the log was rewritten at or before it"
            )
    return problems


def _record_queries(
    outgoing: Sequence[SignedRequest],
    responses: Sequence[PeerResponse | None],
    views: Sequence[WitnessView],
) -> None:
    if not outgoing:
        return
    with transaction.atomic():
        for one, response in zip(outgoing, responses, strict=True):
            _record(one, response, _json(response))
        audit_record(
            actor=None,
            action="audit_witnesses_asked",
            detail={
                "witnesses": {
                    view.peer.federation_id: (
                        int(view.statement["events"])
                        if view.statement
                        else ("no_answer" if not view.answered else "none")
                    )
                    for view in views
                }
            },
        )
