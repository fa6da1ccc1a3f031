"""One council's own records (each council's schema has its own copy of these tables)."""

from __future__ import annotations

from django.db import models


class Organisation(models.Model):
    """An agency whose practitioners work with children and families."""

    class AgencyType(models.TextChoices):
        SOCIAL_CARE = "social_care", "Children's social care"
        EARLY_HELP = "early_help", "Early help"
        SCHOOL = "school", "School"
        EARLY_YEARS = "early_years", "Early years setting"
        GP = "gp", "GP practice"
        HEALTH_VISITING = "health_visiting", "Health visiting"
        SCHOOL_NURSING = "school_nursing", "School nursing"
        HOSPITAL = "hospital", "Hospital"
        MENTAL_HEALTH = "mental_health", "Mental health"
        SUBSTANCE_MISUSE = "substance_misuse", "Substance misuse"
        SEXUAL_HEALTH = "sexual_health", "Sexual health"
        POLICE = "police", "Police"
        HOUSING = "housing", "Housing"
        PROBATION = "probation", "Probation"
        YOUTH_JUSTICE = "youth_justice", "Youth justice"
        YOUTH = "youth", "Youth service"
        VOLUNTARY = "voluntary", "Voluntary sector"

    # Involvement with these services is itself sensitive information by default.
    SENSITIVE_BY_DEFAULT = frozenset(
        {AgencyType.MENTAL_HEALTH, AgencyType.SUBSTANCE_MISUSE, AgencyType.SEXUAL_HEALTH}
    )

    name = models.CharField(max_length=200, unique=True)
    agency_type = models.CharField(max_length=30, choices=AgencyType.choices)
    sensitive_service = models.BooleanField(
        default=False,
        help_text="Involvement of this service is itself sensitive: others see only that a "
        "sensitive service is involved, and contact is brokered.",
    )
    phone = models.CharField(max_length=40, blank=True)
    secure_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
