"""One council's own records: each council's schema has its own copy of these tables.

Patchwork records *that* someone is involved with a child or family and how to reach them,
never case notes. See ARCHITECTURE.md for the data model."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from core.identifiers import name_key, postcode_key, validate_nhs_number, validate_postcode


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

    # Involvement with these services is itself sensitive information.
    SENSITIVE_BY_DEFAULT = frozenset(
        {AgencyType.MENTAL_HEALTH, AgencyType.SUBSTANCE_MISUSE, AgencyType.SEXUAL_HEALTH}
    )

    class Register(models.TextChoices):
        """The public register an organisation was imported from, if any."""

        NONE = "", "Added by the council"
        GIAS = "gias", "Get Information About Schools (Department for Education)"
        ODS_GP = "ods_gp", "NHS Organisation Data Service: GP practices"
        ODS_TRUST = "ods_trust", "NHS Organisation Data Service: NHS trusts"

    # Unique among the council's own organisations; a register may hold two schools of the
    # same name (they differ by URN and postcode).
    name = models.CharField(max_length=200)
    agency_type = models.CharField(max_length=30, choices=AgencyType.choices)
    register = models.CharField(
        max_length=12, choices=Register.choices, blank=True, default="", db_default=""
    )
    # The register's own key: a school's URN, an NHS organisation's ODS code.
    register_code = models.CharField(max_length=12, blank=True, db_default="")
    # What the register says it is, e.g. "Academy converter, Primary".
    register_description = models.CharField(max_length=200, blank=True, db_default="")
    local_authority_code = models.CharField(max_length=3, blank=True, db_default="")
    postcode = models.CharField(max_length=8, blank=True, db_default="")
    # Closed organisations stay for the history of involvements with them, but are no
    # longer offered to choose.
    closed_on = models.DateField(null=True, blank=True)
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
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(register=""), name="one_local_organisation_per_name"
            ),
            models.UniqueConstraint(
                fields=["register", "register_code"],
                condition=~Q(register=""),
                name="one_organisation_per_register_code",
            ),
            models.CheckConstraint(
                condition=Q(register="") | ~Q(register_code=""),
                name="registered_organisation_has_code",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.closed_on is None


class Practitioner(models.Model):
    """A user's working profile: where they work and how colleagues reach them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="practitioner"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="practitioners"
    )
    job_title = models.CharField(max_length=120)
    team = models.CharField(max_length=120, blank=True)
    work_phone = models.CharField(max_length=40, blank=True)
    secure_email = models.EmailField(blank=True)
    # Child-protection practitioners (e.g. a MASH or child-protection social worker) may
    # make a reviewed "break-glass" opening of a shielded record.
    child_protection = models.BooleanField(default=False)

    class Meta:
        ordering = ["user__full_name"]

    def __str__(self) -> str:
        return f"{self.user} ({self.job_title}, {self.organisation})"


class InvolvementRole(models.Model):
    """The council-managed list of roles a practitioner can hold with a person."""

    name = models.CharField(max_length=120, unique=True)
    child_protection = models.BooleanField(
        default=False,
        help_text="Child-protection roles are always visible and can never be sensitive.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    """A child or an adult in a family."""

    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Not known"

    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    nhs_number = models.CharField(
        max_length=10, null=True, blank=True, unique=True, validators=[validate_nhs_number]
    )
    local_identifiers = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"LCS": "123456", "UPN": "A123..."}'
    )
    address = models.TextField(blank=True)
    postcode = models.CharField(max_length=8, blank=True, validators=[validate_postcode])
    postcode_key = models.CharField(max_length=8, blank=True, db_index=True, editable=False)
    date_of_death = models.DateField(null=True, blank=True)
    shielded = models.BooleanField(
        default=False,
        help_text="Hidden from search except for the person's own team (for example, a child "
        "at risk from a parent).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # A duplicate record merged into another (`core.services.person_merge`): gone from
    # search, its page leads to the record it was merged into. NULL for every other record,
    # so the previous release, which never sets it, keeps working during an upgrade.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # the partial index below: the few merged records only
    )

    class Meta:
        ordering = ["family_name", "given_name"]
        indexes = [
            models.Index(fields=["date_of_birth"]),
            models.Index(
                fields=["merged_into"],
                name="person_merged_into",
                condition=models.Q(merged_into__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.postcode_key = postcode_key(self.postcode)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def age_on(self, day: date) -> int | None:
        if self.date_of_birth is None:
            return None
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


class PersonName(models.Model):
    """Every name a person is or was known by, folded for search (current, previous, alias)."""

    class Kind(models.TextChoices):
        CURRENT = "current", "Current name"
        PREVIOUS = "previous", "Previous name"
        ALIAS = "alias", "Also known as"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="names")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    given_key = models.CharField(max_length=100, editable=False)
    family_key = models.CharField(max_length=100, editable=False, db_index=True)

    def __str__(self) -> str:
        return f"{self.given_name} {self.family_name} ({self.get_kind_display()})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.given_key = name_key(self.given_name)
        self.family_key = name_key(self.family_name)
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class FamilyRelationship(models.Model):
    """`relative` is the `person`'s parent, carer, sibling or household member."""

    class Kind(models.TextChoices):
        PARENT = "parent", "Parent"
        CARER = "carer", "Carer"
        SIBLING = "sibling", "Sibling"
        HOUSEHOLD = "household", "Household member"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="relationships")
    relative = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="relatives_of")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(person=models.F("relative")), name="relationship_not_to_self"
            ),
            models.UniqueConstraint(
                fields=["person", "relative", "kind"],
                condition=Q(end_date__isnull=True),
                name="one_current_relationship_of_a_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.relative} is {self.get_kind_display().lower()} of {self.person}"


class Involvement(models.Model):
    """A practitioner is (or was) involved with a person: who, in what role, since when."""

    class LegalBasis(models.TextChoices):
        PUBLIC_TASK = "public_task", "Public task (UK GDPR 6(1)(e))"
        LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (UK GDPR 6(1)(c))"
        VITAL_INTERESTS = "vital_interests", "Vital interests (UK GDPR 6(1)(d))"
        CONSENT = "consent", "Consent (UK GDPR 6(1)(a))"

    class EndReason(models.TextChoices):
        CASE_CLOSED = "case_closed", "Work finished"
        TRANSFERRED = "transferred", "Transferred to a colleague"
        MOVED_AWAY = "moved_away", "The person moved away"
        LEFT_ROLE = "left_role", "Practitioner left the role"
        NOT_CONFIRMED = "not_confirmed", "No longer involved (reminder answered)"
        RECORDED_IN_ERROR = "recorded_in_error", "Recorded in error"
        SOURCE_ENDED = "source_ended", "Ended in the source system"

    # Found through the (person, end date) and (practitioner, end date) indexes below: an
    # index of their own would only be written, never read (a county's feed writes a
    # million involvements).
    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="involvements", db_index=False
    )
    practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="involvements", db_index=False
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="involvements"
    )
    role = models.ForeignKey(InvolvementRole, on_delete=models.PROTECT, related_name="+")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    last_contact_date = models.DateField(null=True, blank=True)
    last_confirmed_at = models.DateTimeField(null=True, blank=True)
    legal_basis = models.CharField(
        max_length=20, choices=LegalBasis.choices, default=LegalBasis.PUBLIC_TASK
    )
    sensitive = models.BooleanField(default=False)
    lead_professional = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start_date"]
        indexes = [
            models.Index(fields=["person", "end_date"]),
            models.Index(fields=["practitioner", "end_date"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["person"],
                condition=Q(lead_professional=True, end_date__isnull=True),
                name="one_lead_professional_per_person",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="involvement_ends_after_it_starts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.practitioner.user} – {self.role} for {self.person}"

    @property
    def is_current(self) -> bool:
        return self.end_date is None


class RecordOpening(models.Model):
    """Someone outside a person's team opened their record, having stated why."""

    # The note's length, as the page's form, the API and `record_open` all check it.
    NOTE_MIN = 10
    NOTE_MAX = 1000

    class Reason(models.TextChoices):
        SECTION_47 = "section_47", "Section 47 enquiry"
        SAFEGUARDING = "safeguarding", "Safeguarding concern"
        NEW_REFERRAL = "new_referral", "New referral"
        WORKING_WITH_FAMILY = "working_with_family", "Already working with the family"
        STARTING_WORK = "starting_work", "About to start work with this person"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="openings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=30, choices=Reason.choices)
    note = models.TextField()
    break_glass = models.BooleanField(default=False)
    opened_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "person", "opened_at"])]

    def __str__(self) -> str:
        return f"{self.user} opened {self.person}: {self.get_reason_display()}"


class PersonMerge(models.Model):
    """Two records of one person made one: `absorbed`'s involvements, family links, openings
    and the rest moved to `keep`. `moved` names every row that moved, by table, and
    `changed` every value the merge altered, so an administrator can put them back
    exactly (`core.services.person_merge_reverse`). Audit events are never moved: they
    keep the absorbed record's id and are read through this row."""

    keep = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="merges_kept")
    absorbed = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="merges_absorbed")
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    merged_at = models.DateTimeField(auto_now_add=True)
    # {"core.Involvement": [ids], "teamwork.Task": [ids], ...}
    moved = models.JSONField(default=dict)
    # {"keep": {field: value before}, "absorbed": {...}, "names": {id: kind before}, ...}
    changed = models.JSONField(default=dict)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-merged_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["absorbed"],
                condition=Q(reversed_at__isnull=True),
                name="one_standing_merge_per_absorbed_record",
            ),
        ]

    def __str__(self) -> str:
        return f"Record {self.absorbed_id} merged into {self.keep_id}"

    @property
    def is_reversed(self) -> bool:
        return self.reversed_at is not None


class ContactRequest(models.Model):
    """A request, brokered by a sensitive service, to be put in touch about a person."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the service"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="contact_requests")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    message = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    response = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Contact request about {self.person} ({self.get_status_display()})"


# Long enough for a service's whole reply to a contact request (up to 1000 characters)
# with the words around it: the reply is the notification, in the app and by email.
NOTIFICATION_TEXT_MAX = 1500


class Notification(models.Model):
    """Something a user should know, shown in the app (and emailed where they chose)."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE)
    kind = models.CharField(max_length=40)
    text = models.CharField(max_length=NOTIFICATION_TEXT_MAX)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self) -> str:
        return self.text


class AuditEvent(models.Model):
    """Append-only and hash-chained: each event holds the hash of the one before, so any
    change, deletion or reordering is found by `patchwork verify_audit`. A database trigger
    refuses UPDATE and DELETE."""

    at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True)
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=40, db_index=True)
    person_id = models.BigIntegerField(null=True)
    detail = models.JSONField(default=dict)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        # "Did this user search for this person within the hour?" is asked on every
        # opening by someone outside the team; the log grows for years.
        indexes = [
            models.Index(fields=["actor_id", "at"], name="audit_actor_at"),
            # "Who has viewed this record", the latest first, on every view by the team:
            # read backwards along one person's events and stop at the page's few.
            models.Index(fields=["person_id", "id"], name="audit_person_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_email} {self.action}"


class CouncilPolicy(models.Model):
    """The council's own settings (one row): retention and confirmation schedules."""

    involvement_retention_years = models.PositiveSmallIntegerField(
        default=6, help_text="Ended involvements are archived this many years after they end."
    )
    person_retention_years = models.PositiveSmallIntegerField(
        default=6,
        help_text="A person with no current involvement and no family link to one is archived "
        "this many years after their last involvement ended.",
    )
    purge_after_archive_days = models.PositiveSmallIntegerField(
        default=90, help_text="Archived records are purged this many days later."
    )
    confirmation_interval_days = models.PositiveSmallIntegerField(
        default=90, help_text="Practitioners confirm each involvement this often."
    )
    confirmation_grace_days = models.PositiveSmallIntegerField(
        default=14, help_text="An unconfirmed involvement is flagged to the team after this."
    )
    gias_local_authority_codes = models.CharField(
        max_length=100,
        blank=True,
        db_default="",
        help_text="The council's three-digit local authority codes in Get Information About "
        "Schools, e.g. 846; schools elsewhere are left out of an import.",
    )
    ods_postcode_districts = models.CharField(
        max_length=300,
        blank=True,
        db_default="",
        help_text="The postcode districts the council covers, e.g. BN1 BN2 BN3; GP practices "
        "and NHS trusts elsewhere are left out of an import.",
    )
    # Steps of the set-up checklist that are a person's judgement, not data.
    sensitive_services_reviewed_at = models.DateTimeField(null=True, blank=True)
    policy_reviewed_at = models.DateTimeField(null=True, blank=True)
    duty_team_contact = models.CharField(
        max_length=200,
        blank=True,
        help_text="How another council reaches this council's children's services duty team.",
    )

    class Meta:
        verbose_name_plural = "council policy"

    def __str__(self) -> str:
        return "Council policy"

    @classmethod
    def current(cls) -> CouncilPolicy:
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy


# --- Delivery: notification preferences, which notifications were emailed, the email outbox


class NotificationPreference(models.Model):
    """How one user wants to hear of one kind of change: an email straight away, in the
    daily digest, or only in the app. Without a row, the kind's default applies."""

    class Delivery(models.TextChoices):
        IMMEDIATE = "immediate", "Email straight away"
        DIGEST = "digest", "In a daily digest email"
        IN_APP = "in_app", "Only in Patchwork"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=40)
    delivery = models.CharField(max_length=10, choices=Delivery.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="one_preference_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.get_delivery_display()}"


class NotificationEmail(models.Model):
    """Which notifications have gone out by email (straight away or in a digest), so none
    is emailed twice. Kept apart from Notification, whose rows core's services create."""

    notification = models.OneToOneField(
        Notification, on_delete=models.CASCADE, related_name="email", primary_key=True
    )
    delivery = models.CharField(max_length=10)
    outbox = models.ForeignKey(
        "EmailOutbox", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Notification {self.notification_id} ({self.delivery})"


class EmailOutbox(models.Model):
    """One email to send. The idempotency key makes enqueueing the same email twice a
    no-op; the sending task marks the row sent in the transaction that sent it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to send"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        BOUNCED = "bounced", "Bounced"

    idempotency_key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=40)
    to_email = models.EmailField()
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    # Rendered at send time from this (e.g. reminder links), so bulk runs insert rows in SQL.
    context = models.JSONField(default=dict, blank=True)
    ics = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    provider_reference = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # After a failed attempt, the sweep tries again from this time (growing waits). A
    # database default, since bulk emails (reminders) are inserted by SQL.
    next_attempt_at = models.DateTimeField(default=timezone.now, db_default=Now())
    # A sender holds the email until then: no one else sends it meanwhile (exactly once).
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["to_email"]),
        ]

    def __str__(self) -> str:
        return f"{self.subject} to {self.to_email}"


# --- Feeds from source systems (decision 0009)


class SourceSystem(models.Model):
    """A council system that sends Patchwork its people and involvements (a case-management
    system, a school MIS, a health record). Its import token is kept only as a hash."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FeedRecord(models.Model):
    """Which local record a source system's id stands for, and a digest of what the feed last
    said about it: a re-import of the same row is recognised as unchanged without reading
    the record."""

    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        RELATIONSHIP = "relationship", "Relationship"
        INVOLVEMENT = "involvement", "Involvement"

    # Found through the unique (source system, kind, source id) index.
    source_system = models.ForeignKey(
        SourceSystem, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    source_id = models.CharField(max_length=100)
    local_id = models.BigIntegerField()
    digest = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "kind", "source_id"], name="one_record_per_source_id"
            )
        ]
        indexes = [models.Index(fields=["kind", "local_id"], name="feedrecord_local")]

    def __str__(self) -> str:
        return f"{self.kind} {self.source_id} -> {self.local_id}"


class ImportRun(models.Model):
    """One import of one file from one source system: a dry run or for real."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV (Patchwork template)"
        FHIR = "fhir", "FHIR R4 Bundle (JSON)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Running"
        DONE = "done", "Finished"
        FAILED = "failed", "Failed"

    source_system = models.ForeignKey(SourceSystem, on_delete=models.PROTECT, related_name="runs")
    format = models.CharField(max_length=4, choices=Format.choices)
    full_snapshot = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    rows_read = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    file_path = models.CharField(max_length=500)
    report_path = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.pk} from {self.source_system} ({self.get_status_display()})"
