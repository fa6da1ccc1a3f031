"""Reads for the federation, with their access rules: the peer directory, each council's
keys, the agreements and traffic IG officers see, and the "other councils" answers a
practitioner may see (only for a person they can already see: core.selectors.person_viewable)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import AuditEvent
from core.selectors import person_viewable
from federation.directory.models import (
    CouncilSigningKey,
    FederationPeer,
    council_federation_id,
)
from federation.models import DataSharingAgreement, Exchange, OutboxMessage
from federation.protocol import PURPOSES
from tenants.db import current_schema, models_from_sql
from tenants.models import Council, Domain
from tenants.selectors import council_url, site_url

# A retired key still verifies for this long, so exchanges signed just before a rotation
# (and key documents cached by peers) keep working.
RETIRED_KEY_VALID = timedelta(days=7)
GOVERNANCE_ROLES = {User.Role.IG_OFFICER, User.Role.COUNCIL_ADMIN}


# --- Councils, keys, peers ----------------------------------------------------------------


def own_council() -> Council:
    """The council whose schema this connection is using (the request's own, when the
    routing middleware already loaded it)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Council) and tenant.pk and tenant.schema_name == current_schema():
        return tenant
    council = Council.objects.filter(schema_name=current_schema()).first()
    if council is None:
        raise RuntimeError("Not inside a council's schema")
    return council


def key_expiry(key: CouncilSigningKey) -> datetime | None:
    return key.retired_at + RETIRED_KEY_VALID if key.retired_at else None


def council_valid_keys(council: Council) -> list[CouncilSigningKey]:
    """The council's current key and any retired key still inside its grace period."""
    now = timezone.now()
    return [
        key
        for key in CouncilSigningKey.objects.filter(council=council).order_by("-created_at")
        if key.retired_at is None or key.retired_at + RETIRED_KEY_VALID > now
    ]


def peer_directory_sync() -> None:
    """Every council on this deployment is a peer of the others, automatically. A peer an
    operator removed stays removed."""
    known = set(FederationPeer.objects.values_list("federation_id", flat=True))
    for council in Council.objects.exclude(schema_name="public"):
        if council_federation_id(council) not in known:
            FederationPeer.objects.get_or_create(
                federation_id=council_federation_id(council),
                defaults={"name": council.name, "council": council},
            )


def peers_list() -> QuerySet[FederationPeer]:
    peer_directory_sync()
    return FederationPeer.objects.select_related("council").order_by("removed_at", "name")


# Within `peers_remembered()` (one batch of requests, federation.batching), each peer is read
# once: the requests in a batch usually all come from the same council.
_remembered: ContextVar[dict[str, FederationPeer | None] | None] = ContextVar(
    "peers_remembered", default=None
)


@contextmanager
def peers_remembered() -> Iterator[None]:
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def peer_active(federation_id: str) -> FederationPeer | None:
    """The peer with this id, unless it is unknown or removed. (Read on every signed
    request: a plain statement, prepared once per council like every other.)"""
    remembered = _remembered.get()
    if remembered is not None and federation_id in remembered:
        return remembered[federation_id]
    peer = next(
        iter(
            models_from_sql(
                FederationPeer,
                "SELECT * FROM public.tenants_federationpeer "
                "WHERE federation_id = %s AND removed_at IS NULL",
                [federation_id],
            )
        ),
        None,
    )
    if remembered is not None:
        remembered[federation_id] = peer
    return peer


def peer_for_operator(peer_id: int) -> FederationPeer:
    peer = FederationPeer.objects.filter(pk=peer_id).first()
    if peer is None:
        raise Http404("No such peer")
    return peer


def peer_base_url(peer: FederationPeer) -> str:
    if peer.council is not None:
        return council_url(peer.council, "").rstrip("/")
    return peer.base_url.rstrip("/")


def peers_active_with_urls() -> list[tuple[FederationPeer, str]]:
    """Every peer not removed, with its base URL: two queries however many peers (a fan-out
    to every peer must not look up each council's domain one by one)."""
    peers = list(FederationPeer.objects.filter(removed_at__isnull=True).select_related("council"))
    primary = dict(
        Domain.objects.filter(
            tenant_id__in=[p.council_id for p in peers if p.council_id], is_primary=True
        ).values_list("tenant_id", "domain")
    )
    return [
        (
            peer,
            site_url(primary[peer.council_id], "").rstrip("/")
            if peer.council_id in primary
            else peer_base_url(peer),
        )
        for peer in peers
    ]


# --- Agreements, for information governance -------------------------------------------------


def _governance_only(user: User) -> None:
    if user.role not in GOVERNANCE_ROLES:
        raise PermissionDenied("Only information governance officers and administrators")


def agreements_for(user: User) -> QuerySet[DataSharingAgreement]:
    _governance_only(user)
    return DataSharingAgreement.objects.order_by("-created_at")


def agreement_for(user: User, agreement_id: str) -> DataSharingAgreement:
    _governance_only(user)
    agreement = DataSharingAgreement.objects.filter(agreement_id=agreement_id).first()
    if agreement is None:
        raise Http404("No such agreement")
    return agreement


def agreement_history(agreement: DataSharingAgreement) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        action__startswith="agreement_", detail__agreement_id=agreement.agreement_id
    ).order_by("id")


def agreement_traffic(agreement: DataSharingAgreement) -> QuerySet[Exchange]:
    return Exchange.objects.filter(agreement_id=agreement.agreement_id).order_by("-at")


def agreements_signed_exist() -> bool:
    """Whether any agreement signed by both sides is active (for the set-up checklist)."""
    return DataSharingAgreement.objects.filter(status=DataSharingAgreement.Status.ACTIVE).exists()


def agreements_in_force(purpose: str | None = None) -> list[DataSharingAgreement]:
    """Agreements that let pointers cross now, with peers that have not been removed."""
    peers = set(
        FederationPeer.objects.filter(removed_at__isnull=True).values_list(
            "federation_id", flat=True
        )
    )
    return [
        agreement
        for agreement in DataSharingAgreement.objects.filter(
            status=DataSharingAgreement.Status.ACTIVE
        )
        if agreement.is_in_force
        and (purpose is None or purpose in agreement.purposes)
        and agreement.partner_id in peers
    ]


def council_names() -> dict[str, str]:
    """Each council's name by its federation id (`council:<ONS code>`): every peer's, and
    this council's own."""
    names = dict(FederationPeer.objects.values_list("federation_id", "name"))
    own = own_council()
    names[council_federation_id(own)] = own.name
    return names


def purposes_in_words(purposes: list[str]) -> list[str]:
    """The purposes in words, in the protocol's order (an unknown code last, as it is)."""
    known = [words for code, words in PURPOSES.items() if code in purposes]
    return known + [code for code in purposes if code not in PURPOSES]


@dataclass(frozen=True)
class AgreementShown:
    """An agreement as its pages show it: councils by name, purposes in words."""

    agreement: DataSharingAgreement
    partner_name: str
    purposes: list[str]
    signed_by: list[str]


def _shown(agreement: DataSharingAgreement, names: dict[str, str]) -> AgreementShown:
    return AgreementShown(
        agreement=agreement,
        partner_name=names.get(agreement.partner_id, agreement.partner_id),
        purposes=purposes_in_words(agreement.purposes),
        signed_by=[names.get(party, party) for party in agreement.signatures],
    )


def agreements_shown(user: User) -> list[AgreementShown]:
    names = council_names()
    return [_shown(agreement, names) for agreement in agreements_for(user)]


def agreement_shown(agreement: DataSharingAgreement) -> AgreementShown:
    return _shown(agreement, council_names())


# --- The practitioner's "other councils" panel ----------------------------------------------


@dataclass(frozen=True)
class PurposeCovered:
    """A purpose this council's agreements in force cover, and with which councils."""

    purpose: str
    name: str
    councils: list[str]


def purposes_covered() -> list[PurposeCovered]:
    """The purposes (in protocol.PURPOSES' order) that at least one agreement in force
    covers, each with the partner councils' names: what a practitioner may check for."""
    names = dict(FederationPeer.objects.values_list("federation_id", "name"))
    councils: dict[str, set[str]] = {}
    for agreement in agreements_in_force():
        for purpose in agreement.purposes:
            councils.setdefault(purpose, set()).add(
                names.get(agreement.partner_id, agreement.partner_id)
            )
    return [
        PurposeCovered(purpose, name, sorted(councils[purpose]))
        for purpose, name in PURPOSES.items()
        if purpose in councils
    ]


@dataclass
class PeerAnswer:
    """One council's answer about a person, as the practitioner sees it."""

    peer_id: str
    peer_name: str
    # match, possible_mismatch, no_match, more_attributes_requested, could_not_check
    outcome: str
    pointers: list[dict[str, Any]]
    sensitive_service_involved: bool = False
    duty_team_contact: str = ""
    at: datetime | None = None
    updated: bool = False
    # What the council compared and how sure it is (decision 0013); empty from a council
    # that predates them.
    comparisons: dict[str, str] = field(default_factory=dict)
    confidence: str = ""

    @property
    def label(self) -> str:
        return {
            "match": f"Known to {self.peer_name}",
            "possible_mismatch": f"{self.peer_name}: possible mismatch",
            "no_match": f"Not known to {self.peer_name}",
            "more_attributes_requested": f"{self.peer_name} needs more details to be sure",
        }.get(self.outcome, f"{self.peer_name} could not be checked")

    @property
    def needs_checking(self) -> bool:
        """Whether the practitioner must check with the council before acting on it: a
        possible mismatch, or a match that does not say what matched."""
        return self.outcome == "possible_mismatch" or (
            self.outcome == "match" and self.confidence not in MATCH_CONFIDENCES
        )

    @property
    def summary(self) -> str:
        """What matched, in words; empty when nothing was matched."""
        compared = self.comparisons
        nhs = compared.get("nhs_number")
        born = compared.get("date_of_birth")
        check = f"check with {self.peer_name} before acting"
        if self.outcome == "possible_mismatch":
            if nhs == "no_match":
                return (
                    f"The name and date of birth match a child known to {self.peer_name}, "
                    f"but the NHS number does not: {check}"
                )
            if born == "no_match":
                return f"NHS number matches but the date of birth does not: {check}"
            if born == "match":
                return f"NHS number and date of birth match but the name does not: {check}"
            return f"NHS number matches but the name and date of birth do not: {check}"
        if self.outcome != "match":
            return ""
        if self.confidence == "confirmed":
            return "NHS number, name and date of birth match"
        if self.confidence == "nhs_number_only":
            if born == "match":
                return "NHS number and date of birth match; the name was not compared"
            return "NHS number matches; the name and date of birth were not compared"
        if self.confidence == "demographic_only":
            return "Name and date of birth match; the NHS number was not compared"
        return f"{self.peer_name} did not say which details matched: {check}"


# A match whose confidence is one of these says what matched; any other needs checking.
MATCH_CONFIDENCES = {"confirmed", "nhs_number_only", "demographic_only"}


def answer_from_document(peer_id: str, peer_name: str, document: dict[str, Any]) -> PeerAnswer:
    outcome = str(document.get("outcome", "could_not_check"))
    comparisons = document.get("comparisons")
    return PeerAnswer(
        peer_id=peer_id,
        peer_name=peer_name,
        outcome=outcome,
        # Pointers only ever come with a match: never with a possible mismatch.
        pointers=list(document.get("pointers", [])) if outcome == "match" else [],
        sensitive_service_involved=outcome == "match"
        and bool(document.get("sensitive_service_involved")),
        duty_team_contact=str(document.get("duty_team_contact", "")),
        comparisons=(
            {str(k): str(v) for k, v in comparisons.items()}
            if isinstance(comparisons, dict)
            else {}
        ),
        confidence=str(document.get("confidence", "")),
    )


def other_councils_last_answers(*, user: User, person_id: int) -> list[PeerAnswer]:
    """The latest answer from each council about this person, with any pointer updates
    pushed since. Only for someone who may see the person's network."""
    person_viewable(user, person_id)
    names = dict(FederationPeer.objects.values_list("federation_id", "name"))
    answers: dict[str, PeerAnswer] = {}
    lookups = Exchange.objects.filter(
        direction=Exchange.Direction.OUT, kind=Exchange.Kind.LOOKUP, person_id=person_id
    ).order_by("at")
    for lookup in lookups:
        answer = answer_from_document(
            lookup.peer_id, names.get(lookup.peer_id, lookup.peer_id), lookup.response
        )
        answer.at = lookup.at
        answers[lookup.peer_id] = answer
        update = (
            Exchange.objects.filter(
                direction=Exchange.Direction.IN,
                kind=Exchange.Kind.POINTER_UPDATE,
                peer_id=lookup.peer_id,
                in_reply_to=lookup.request_id,
            )
            .order_by("-at")
            .first()
        )
        if update is not None and answer.outcome == "match":
            pushed = answer_from_document(
                lookup.peer_id, answer.peer_name, {**update.payload, "outcome": "match"}
            )
            pushed.at, pushed.updated = update.at, True
            # An update changes who is involved, not what matched.
            pushed.comparisons, pushed.confidence = answer.comparisons, answer.confidence
            answers[lookup.peer_id] = pushed
    return sorted(answers.values(), key=lambda a: a.peer_name)


# --- The operator's outbox queue -------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    council: Council
    message: OutboxMessage


def outbox_queue(limit_per_council: int = 50) -> list[QueueRow]:
    """Pushes not yet delivered, across every council: metadata only, never the payload."""
    rows: list[QueueRow] = []
    for council in Council.objects.exclude(schema_name="public").order_by("name"):
        with schema_context(council.schema_name):
            pending = OutboxMessage.objects.filter(
                delivered_at__isnull=True, given_up_at__isnull=True
            ).order_by("id")[:limit_per_council]
            rows.extend(QueueRow(council=council, message=m) for m in pending)
    return rows
