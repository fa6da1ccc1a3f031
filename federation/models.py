"""A council's side of the federation, in its own schema: its data-sharing agreements, the
match-key index per agreement, every exchange sent and received, and the outbox of pushes.
The peer directory is deployment-wide and lives in the public schema (`federation.directory`)."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import Person


class DataSharingAgreement(models.Model):
    """A canonical-JSON agreement between this council and one partner. It lets pointers
    cross only while it is active: signed by both, inside its dates, not revoked."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Proposed, not yet signed here"
        AWAITING_PARTNER = "awaiting_partner", "Signed here, waiting for the partner"
        AWAITING_US = "awaiting_us", "Signed by the partner, waiting for our signature"
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    agreement_id = models.CharField(max_length=40, unique=True)
    version = models.PositiveIntegerField(default=1)
    partner_id = models.CharField(max_length=40, help_text="council:<ONS code>")
    document = models.JSONField(help_text="The agreement without its signatures.")
    signatures = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    proposed_here = models.BooleanField(default=True)
    # The per-agreement secret for match keys, sealed under the key-encryption key.
    sealed_secret = models.BinaryField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=300, blank=True)
    # A rekey started here and not yet accepted by the partner (decision 0016): the new
    # secret, sealed under the KEK, and the exact signed message to send again until the
    # partner answers. The old secret stays in use until then.
    pending_sealed_secret = models.BinaryField(null=True, blank=True)
    pending_rekey = models.JSONField(null=True, blank=True)
    rekeyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Agreement {self.agreement_id} with {self.partner_id}"

    @property
    def valid_from(self) -> date:
        return date.fromisoformat(self.document["valid_from"])

    @property
    def valid_until(self) -> date:
        return date.fromisoformat(self.document["valid_until"])

    @property
    def purposes(self) -> list[str]:
        return list(self.document.get("purposes", []))

    @property
    def shareable_roles(self) -> list[str]:
        return list(self.document.get("shareable_roles", []))

    @property
    def demographic_matching(self) -> bool:
        return bool(self.document.get("demographic_matching"))

    @property
    def is_expired(self) -> bool:
        return timezone.localdate() > self.valid_until

    @property
    def is_in_force(self) -> bool:
        """Active, fully signed, inside its dates and not revoked."""
        today = timezone.localdate()
        return (
            self.status == self.Status.ACTIVE
            and self.revoked_at is None
            and self.valid_from <= today <= self.valid_until
            and len(self.signatures) == 2
        )

    @property
    def state_label(self) -> str:
        if self.status == self.Status.ACTIVE and self.is_expired:
            return "Expired"
        if self.status == self.Status.ACTIVE and timezone.localdate() < self.valid_from:
            return "Signed, not yet in force"
        return self.get_status_display()


class MatchKey(models.Model):
    """One HMAC of a person's normalised identifier under an agreement's secret."""

    class Kind(models.TextChoices):
        NHS = "nhs", "NHS number"
        DEMOGRAPHIC = "demographic", "Name and date of birth"

    agreement = models.ForeignKey(
        DataSharingAgreement, on_delete=models.CASCADE, related_name="match_keys"
    )
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    key = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["agreement", "key"])]
        constraints = [
            models.UniqueConstraint(
                fields=["agreement", "person", "kind", "key"], name="one_match_key_each"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} key for person {self.person_id}"


class Exchange(models.Model):
    """One signed request sent or received, with its answer: the traffic IG officers see,
    the nonce and request-id memory that refuses replays, and the link a push refers to."""

    class Direction(models.TextChoices):
        IN = "in", "Received"
        OUT = "out", "Sent"

    class Kind(models.TextChoices):
        LOOKUP = "lookup", "Who is involved?"
        AGREEMENT_OFFER = "agreement_offer", "Agreement offered"
        AGREEMENT_COUNTERSIGN = "agreement_signature", "Agreement countersigned"
        AGREEMENT_REVOKE = "agreement_revoke", "Agreement revoked"
        POINTER_UPDATE = "pointer_update", "Pointer update"
        AGREEMENT_REKEY = "agreement_rekey", "Agreement re-keyed"

    direction = models.CharField(max_length=3, choices=Direction.choices)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    peer_id = models.CharField(max_length=40)
    agreement_id = models.CharField(max_length=40, blank=True, db_index=True)
    request_id = models.CharField(max_length=80)
    nonce = models.CharField(max_length=80, blank=True)
    body_sha256 = models.CharField(max_length=64)
    purpose = models.CharField(max_length=40, blank=True)
    practitioner = models.CharField(max_length=64, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=40, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    response = models.JSONField(default=dict, blank=True)
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For a pointer update: the lookup it follows up (its request id, at the asking council).
    in_reply_to = models.CharField(max_length=80, blank=True, db_index=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(
                fields=["direction", "peer_id", "request_id"], name="one_exchange_per_request_id"
            ),
            models.UniqueConstraint(
                fields=["direction", "peer_id", "nonce"],
                condition=~Q(nonce=""),
                name="nonce_used_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.kind} {self.peer_id} {self.request_id}"


class OutboxMessage(models.Model):
    """A push waiting to be delivered. Written in the same transaction as the change that
    caused it; delivered by Celery, retried with per-peer backoff; the receiver dedupes by
    `idempotency_key`, so a redelivery has no second effect."""

    idempotency_key = models.CharField(max_length=40, unique=True)
    peer_id = models.CharField(max_length=40, db_index=True)
    agreement_id = models.CharField(max_length=40)
    kind = models.CharField(max_length=24, default=Exchange.Kind.POINTER_UPDATE)
    in_reply_to = models.CharField(max_length=80, blank=True)
    payload = models.JSONField()
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Set when the message can never be delivered (peer removed, agreement ended).
    given_up_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["peer_id", "delivered_at", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.kind} to {self.peer_id} ({self.idempotency_key})"


class WitnessedCheckpoint(models.Model):
    """A checkpoint of another council's audit log that this council witnessed (decision
    0015): kept in this council's own schema, so nobody who controls the other council's
    database can change what we signed. One row per checkpoint; `statement` is the latest
    statement we signed about it (a head that did not move is countersigned again with a
    fresh time), empty for a checkpoint we only checked on the way (an intermediate)."""

    peer_id = models.CharField(max_length=40, help_text="council:<ONS code> of the log's council")
    sequence = models.PositiveIntegerField()
    events = models.PositiveBigIntegerField()
    head_hash = models.CharField(max_length=64)
    digest = models.CharField(max_length=64, help_text="sha-256 of the canonical checkpoint")
    checkpoint = models.JSONField(help_text="The council's signed checkpoint, whole")
    statement = models.JSONField(null=True, blank=True)
    first_witnessed_at = models.DateTimeField(default=timezone.now)
    witnessed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["peer_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["peer_id", "sequence"], name="one_witnessed_sequence")
        ]

    def __str__(self) -> str:
        return f"{self.peer_id} checkpoint {self.sequence} ({self.events} events)"


class WitnessAlert(models.Model):
    """A checkpoint this council refused to witness because it contradicts what it
    witnessed before (fewer events, another document at a number already witnessed, a
    broken link) or is not genuine. Kept, and logged at ERROR: it is the sign of a log
    cut back or rewritten at the council that sent it."""

    peer_id = models.CharField(max_length=40)
    reason = models.CharField(max_length=40)
    detail = models.CharField(max_length=500)
    sequence = models.BigIntegerField(null=True, blank=True)
    events = models.BigIntegerField(null=True, blank=True)
    checkpoint = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["peer_id", "at"])]

    def __str__(self) -> str:
        return f"{self.peer_id}: {self.reason} at {self.at:%Y-%m-%d %H:%M}"
