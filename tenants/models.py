"""The platform's own records, in the public schema: councils and their domains."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

# ONS Government Statistical Service codes for local authorities: a country letter
# (E England, W Wales, S Scotland, N Northern Ireland) and eight digits, e.g. E06000043.
GSS_CODE = re.compile(r"^[EWSN][0-9]{8}$")


def validate_gss_code(value: str) -> None:
    if not GSS_CODE.match(value):
        raise ValidationError(
            "Enter the council's ONS code: a letter E, W, S or N and eight digits, like E06000043"
        )


class Council(TenantMixin):
    """A council using Patchwork: one PostgreSQL schema holds everything that is its own."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=120, unique=True)
    code = models.CharField("ONS code", max_length=9, unique=True, validators=[validate_gss_code])
    slug = models.SlugField(max_length=63, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    suspended_at = models.DateTimeField(null=True, blank=True)

    # Schemas are created by cloning the template in `council_onboard` and dropped only by
    # `council_offboard`, after an export: never as a side effect of save() or delete().
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def is_platform(self) -> bool:
        return self.schema_name == "public"

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED


class Domain(DomainMixin):
    """A host name that routes to a council, e.g. brighton-and-hove.patchwork.example."""


class AuditCheckpoint(models.Model):
    """A signed head of one council's audit log (decision 0012), kept here in the public
    schema and not in the council's own, so a superuser who cuts the newest events out of
    the council's schema does not, in the same statement, rewrite what was signed.

    `document` is the whole signed document (RFC 8785 canonical JSON with a `signatures`
    map, the federation's format): verification reads only the document, and its signature
    covers every field of it."""

    council = models.ForeignKey(Council, on_delete=models.CASCADE, related_name="checkpoints")
    sequence = models.PositiveIntegerField()
    document = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["council", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["council", "sequence"], name="audit_checkpoint_sequence_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.council} checkpoint {self.sequence}"


class AuditWitnessStatement(models.Model):
    """A witness council's signed statement about one of this council's checkpoints
    (decision 0015), kept with the checkpoints. One row per witness and checkpoint: a
    later "still at N" statement replaces the earlier one for the same checkpoint. The
    witness keeps its own copy, which is what `verify_audit --witnessed` asks for: these
    rows are for reading, not for trusting."""

    council = models.ForeignKey(
        Council, on_delete=models.CASCADE, related_name="witness_statements"
    )
    witness = models.CharField(max_length=40, help_text="council:<ONS code> of the witness")
    sequence = models.PositiveIntegerField()
    statement = models.JSONField()
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["council", "witness", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["council", "witness", "sequence"], name="one_statement_per_witness"
            )
        ]

    def __str__(self) -> str:
        return f"{self.witness} on {self.council} checkpoint {self.sequence}"


class PlatformAuditEvent(models.Model):
    """The platform's own audit log, in the public schema (decision 0019): what operators
    did to operators' accounts (unlocks, second-factor resets, recovery codes). Append-only
    (the database refuses updates and deletes) and hash-chained like a council's log."""

    at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=60)
    detail = models.JSONField(default=dict)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"
