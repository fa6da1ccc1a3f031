"""What the API reads and writes. Input serializers only check shape and say what is wrong
in the user's words; the rules stay in the services. Output serializers render what the
selectors decided the caller may see, and nothing more."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from core.api.fields import (
    SHOWS_SOMETHING,
    SPACES,
    JSONBoolean,
    JSONDate,
    JSONInteger,
    JSONText,
)
from core.identifiers import POSTCODE_TYPED, validate_nhs_number
from core.models import Involvement, InvolvementRole, Person, RecordOpening
from core.selectors import SearchQuery, TeamMember, relationship_label, roles_active

MASKED_MESSAGE = "A sensitive service is involved – request contact"
DATE_INVALID = "Enter the date as year-month-day, like 2025-03-14"
TRUE_OR_FALSE = "Answer true or false"
STAFF_ONLY = "Choose yourself or one of your own staff"


def _date(label: str, *, past_only: bool = True, **kwargs: Any) -> JSONDate:
    """A date, not after today unless `past_only` is False: the pages' date field's rules."""
    return JSONDate(label=label, past_only=past_only, **kwargs)


def _text(label: str, max_length: int, *, min_length: int | None = None, **kwargs: Any) -> JSONText:
    messages = {
        "required": f"Enter the {label}",
        "blank": f"Enter the {label}",
        "max_length": f"The {label} must be {max_length} characters or fewer",
        "min_length": f"The {label} must be at least {min_length} characters",
        "invalid": f"Enter the {label} as text",
        "pattern": f"Enter the {label}",
    }
    return JSONText(max_length=max_length, min_length=min_length, error_messages=messages, **kwargs)


def _boolean(**kwargs: Any) -> JSONBoolean:
    return JSONBoolean(error_messages={"invalid": TRUE_OR_FALSE}, **kwargs)


def _choice(choices: Any, message: str, **kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=choices,
        error_messages={"required": message, "invalid_choice": message, "null": message},
        **kwargs,
    )


# --- Search ---------------------------------------------------------------------------


class SearchInput(serializers.Serializer):
    """NHS number; or surname and date of birth; or surname, first name and postcode."""

    nhs_number = _text("NHS number", 20, required=False, allow_blank=True, default="")
    family_name = _text("surname", 100, required=False, allow_blank=True, default="")
    given_name = _text("first name", 100, required=False, allow_blank=True, default="")
    date_of_birth = _date("date of birth", required=False, allow_null=True, default=None)
    postcode = _text("postcode", 10, required=False, allow_blank=True, default="")
    break_glass = _boolean(
        required=False,
        default=False,
        help_text="Child-protection practitioners only: also find shielded people. Every "
        "break-glass search and opening is reviewed.",
    )

    def query(self) -> SearchQuery:
        data = self.validated_data
        return SearchQuery(
            nhs_number=data["nhs_number"],
            family_name=data["family_name"],
            given_name=data["given_name"],
            date_of_birth=data["date_of_birth"],
            postcode=data["postcode"],
        )


class SearchResultOut(serializers.Serializer):
    """The minimum to pick the right person."""

    id = serializers.IntegerField(source="person_id")
    name = serializers.CharField()
    date_of_birth = serializers.DateField(allow_null=True)
    sex = serializers.CharField()
    postcode_area = serializers.CharField()
    on_team = serializers.BooleanField(help_text="You are currently involved with this person")
    shielded = serializers.BooleanField()
    url = serializers.SerializerMethodField()

    def get_url(self, result: Any) -> str:
        return reverse("api:person", args=[result.person_id])


class SearchResultsOut(serializers.Serializer):
    results = SearchResultOut(many=True)


# --- Adding and changing a person ---------------------------------------------------------

SEX_MESSAGE = "Choose female, male, other or unknown"


def _postcode(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(
        POSTCODE_TYPED,
        max_length=10,
        allow_blank=True,
        trim_whitespace=False,
        error_messages={
            "invalid": "Enter a real postcode, like BN1 1AA",
            "max_length": "The postcode must be 10 characters or fewer",
        },
        **kwargs,
    )


def _nhs_number_check(value: str) -> None:
    if value:
        try:
            validate_nhs_number(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class PersonInput(serializers.Serializer):
    """A child or adult to add. Send it once without `confirm_new`: if people with the same
    surname and date of birth, or the same names and postcode, are already recorded, the
    answer is 300 with them, and nothing is added; send it again with `"confirm_new": true`
    if none of them is the person."""

    given_name = _text("first name", 100, pattern=SHOWS_SOMETHING)
    family_name = _text("surname", 100, pattern=SHOWS_SOMETHING)
    date_of_birth = _date("date of birth", required=False, allow_null=True, default=None)
    sex = _choice(Person.Sex.choices, SEX_MESSAGE, required=False, default=Person.Sex.UNKNOWN)
    nhs_number = _text(
        "NHS number",
        20,
        required=False,
        allow_blank=True,
        default="",
        validators=[_nhs_number_check],
        help_text="10 digits, spaces allowed",
    )
    address = _text("address", 500, required=False, allow_blank=True, default="")
    postcode = _postcode(required=False, default="")
    confirm_new = _boolean(
        required=False,
        default=False,
        help_text="true: you have seen the possible matches and none is this person",
    )


class PersonChange(serializers.Serializer):
    """Any of a person's details; only those sent change, and only those are audited."""

    given_name = _text("first name", 100, required=False, pattern=SHOWS_SOMETHING)
    family_name = _text("surname", 100, required=False, pattern=SHOWS_SOMETHING)
    date_of_birth = _date("date of birth", required=False, allow_null=True)
    sex = _choice(Person.Sex.choices, SEX_MESSAGE, required=False)
    nhs_number = _text(
        "NHS number", 20, required=False, allow_blank=True, validators=[_nhs_number_check]
    )
    address = _text("address", 500, required=False, allow_blank=True)
    postcode = _postcode(required=False)
    shielded = _boolean(
        required=False, help_text="The person's own team only: hide the record from search"
    )
    date_of_death = _date("date of death", required=False, allow_null=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give at least one detail to change")
        return attrs


class ExistingRecordOut(serializers.Serializer):
    id = serializers.IntegerField(source="person_id")
    url = serializers.SerializerMethodField()

    def get_url(self, result: Any) -> str:
        return reverse("api:person", args=[result.person_id])


class NHSNumberExistsOut(serializers.Serializer):
    """409: a record already holds this NHS number. `existing` names it when you may know
    it; when it is hidden from you (a shielded record), it is null and `detail` says whom
    to ask."""

    detail = serializers.CharField()
    code = serializers.CharField(default="nhs_number_exists")
    existing = ExistingRecordOut(allow_null=True)


class PossibleMatchesOut(serializers.Serializer):
    """300: nothing was added; these may be the same person. Open one (state a reason at
    its openings URL), or send the request again with `"confirm_new": true`."""

    detail = serializers.CharField()
    code = serializers.CharField(default="possible_matches")
    possible_matches = SearchResultOut(many=True)


# --- A person and their network ---------------------------------------------------------


class PersonNameOut(serializers.Serializer):
    kind = serializers.CharField(source="get_kind_display")
    given_name = serializers.CharField()
    family_name = serializers.CharField()


class PersonOut(serializers.Serializer):
    """A person's record, for someone on their team or who has stated a reason."""

    id = serializers.IntegerField(source="person.pk")
    given_name = serializers.CharField(source="person.given_name")
    family_name = serializers.CharField(source="person.family_name")
    other_names = serializers.SerializerMethodField()
    date_of_birth = serializers.DateField(source="person.date_of_birth", allow_null=True)
    date_of_death = serializers.DateField(source="person.date_of_death", allow_null=True)
    sex = serializers.CharField(source="person.get_sex_display")
    nhs_number = serializers.CharField(source="person.nhs_number", allow_null=True)
    address = serializers.CharField(source="person.address")
    postcode = serializers.CharField(source="person.postcode")
    shielded = serializers.BooleanField(source="person.shielded")
    access = serializers.ChoiceField(
        source="access.value",
        choices=["team", "opened", "created"],
        help_text="team: you are involved now; opened: you stated a reason recently; "
        "created: you added this record within the hour",
    )
    break_glass = serializers.BooleanField(help_text="Opened by break-glass: will be reviewed")
    network_url = serializers.SerializerMethodField()

    @extend_schema_field(PersonNameOut(many=True))
    def get_other_names(self, access: Any) -> list[dict[str, Any]]:
        names = access.person.names.exclude(kind="current").order_by("kind", "id")
        return list(PersonNameOut(names, many=True).data)

    def get_network_url(self, access: Any) -> str:
        return reverse("api:person-network", args=[access.person.pk])


class TeamMemberOut(serializers.Serializer):
    """Someone involved with the person, with how to reach them."""

    involvement_id = serializers.IntegerField()
    practitioner_name = serializers.CharField()
    job_title = serializers.CharField()
    role = serializers.CharField()
    organisation = serializers.CharField()
    agency_type = serializers.CharField()
    agency = serializers.CharField(source="agency_label")
    phone = serializers.CharField()
    email = serializers.CharField()
    start_date = serializers.DateField(allow_null=True)
    end_date = serializers.DateField(allow_null=True)
    end_reason = serializers.CharField()
    last_contact_date = serializers.DateField(allow_null=True)
    last_contact_days = serializers.IntegerField(allow_null=True)
    last_confirmed_at = serializers.DateTimeField(allow_null=True)
    lead_professional = serializers.BooleanField()
    child_protection = serializers.BooleanField()
    is_me = serializers.BooleanField()


class SensitiveServiceOut(serializers.Serializer):
    """A sensitive service's involvement, seen from outside that service: nothing else."""

    # Both always present (never defaulted), so a team member in full, which has neither,
    # never also matches this shape: each network entry is exactly one of the two.
    sensitive_service = serializers.BooleanField()
    message = serializers.CharField()


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="NetworkEntry",
        serializers=[TeamMemberOut, SensitiveServiceOut],
        resource_type_field_name=None,
    )
)
class NetworkEntryField(serializers.Field):
    """A team member in full, or the masked notice for a sensitive service."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, member: TeamMember) -> dict[str, Any]:
        if member.masked:
            return {"sensitive_service": True, "message": MASKED_MESSAGE}
        return dict(TeamMemberOut(member).data)


class NetworkEntryListOut(serializers.Serializer):
    results = serializers.ListField(child=NetworkEntryField())


class PersonSummaryOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField(source="full_name")
    date_of_birth = serializers.DateField(allow_null=True)


class FamilyMemberOut(serializers.Serializer):
    relationship = serializers.CharField(help_text="How they stand to the person: Parent, Child…")
    person = PersonSummaryOut()
    current = serializers.ListField(child=NetworkEntryField())


class NetworkOut(serializers.Serializer):
    """The team around a person now, who was involved before, and the family's teams."""

    person = PersonSummaryOut()
    current = serializers.ListField(child=NetworkEntryField())
    history = serializers.ListField(child=NetworkEntryField())
    family = serializers.SerializerMethodField()

    @extend_schema_field(FamilyMemberOut(many=True))
    def get_family(self, network: Any) -> list[dict[str, Any]]:
        return [
            dict(
                FamilyMemberOut(
                    {
                        "relationship": relationship_label(relationship, network.person),
                        "person": relative,
                        "current": members,
                    }
                ).data
            )
            for relationship, relative, members in network.family
        ]


class ReasonRequiredOut(serializers.Serializer):
    """403: the caller found the person by search but is not on their team."""

    detail = serializers.CharField()
    code = serializers.CharField()
    openings_url = serializers.CharField()
    reasons = serializers.DictField(child=serializers.CharField())
    break_glass = serializers.BooleanField()


class ErrorOut(serializers.Serializer):
    detail = serializers.CharField()


class TokenOut(serializers.Serializer):
    token = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_at = serializers.DateTimeField()


# --- Openings ---------------------------------------------------------------------------

REASON_MESSAGE = "Choose the reason you need to see this record"
NOTE_MESSAGE = (
    "Say in a sentence why you need to see this record (at least "
    f"{RecordOpening.NOTE_MIN} characters)"
)


class OpeningInput(serializers.Serializer):
    reason = _choice(RecordOpening.Reason.choices, REASON_MESSAGE)
    note = JSONText(
        min_length=RecordOpening.NOTE_MIN,
        max_length=RecordOpening.NOTE_MAX,
        # At least NOTE_MIN characters between the first and the last that are not spaces:
        # what record_open counts.
        pattern=rf"^[{SPACES}]*[^{SPACES}\x00][^\x00]{{{RecordOpening.NOTE_MIN - 2},}}"
        rf"[^{SPACES}\x00][{SPACES}]*$",
        error_messages={
            "required": NOTE_MESSAGE,
            "blank": NOTE_MESSAGE,
            "min_length": NOTE_MESSAGE,
            "pattern": NOTE_MESSAGE,
            "invalid": NOTE_MESSAGE,
            "max_length": f"The note must be {RecordOpening.NOTE_MAX} characters or fewer",
        },
    )


class OpeningOut(serializers.Serializer):
    access = serializers.ChoiceField(choices=["team", "opened"])
    break_glass = serializers.BooleanField()
    valid_until = serializers.DateTimeField(allow_null=True)
    person_url = serializers.CharField()


# --- Involvements -----------------------------------------------------------------------


class InvolvementOut(serializers.ModelSerializer):
    """An involvement as its own practitioner (or their manager) sees it."""

    person = serializers.IntegerField(source="person_id")
    practitioner = serializers.IntegerField(source="practitioner_id")
    practitioner_name = serializers.CharField(source="practitioner.user.full_name")
    role = serializers.IntegerField(source="role_id")
    role_name = serializers.CharField(source="role.name")
    organisation = serializers.CharField(source="organisation.name")
    end_reason = serializers.ChoiceField(
        choices=Involvement.EndReason.choices,
        allow_blank=True,
        help_text="Why it ended; empty while the involvement is current",
    )

    class Meta:
        model = Involvement
        fields = [
            "id", "person", "practitioner", "practitioner_name", "role", "role_name",
            "organisation", "start_date", "end_date", "end_reason", "last_contact_date",
            "last_confirmed_at", "legal_basis", "sensitive", "lead_professional",
        ]  # fmt: skip
        read_only_fields = fields


class RoleOut(serializers.ModelSerializer):
    class Meta:
        model = InvolvementRole
        fields = ["id", "name", "child_protection"]
        read_only_fields = fields


class InvolvementInput(serializers.Serializer):
    """Record that you (or, for a manager, one of your staff) are involved."""

    role = serializers.PrimaryKeyRelatedField(
        queryset=roles_active(),
        pk_field=JSONInteger(error_messages={"invalid": "Choose a role from the council's list"}),
        help_text="A role id from GET /api/v1/roles",
        error_messages={
            "required": "Choose the role you have with this person",
            "null": "Choose the role you have with this person",
            "does_not_exist": "Choose a role from the council's list",
            "incorrect_type": "Choose a role from the council's list",
        },
    )
    practitioner = JSONInteger(
        required=False,
        allow_null=True,
        default=None,
        help_text="Managers only: the practitioner id of one of their staff; leave out for "
        "yourself",
        error_messages={"invalid": STAFF_ONLY},
    )
    start_date = _date("start date", required=False, allow_null=True, default=None)
    legal_basis = _choice(
        Involvement.LegalBasis.choices,
        "Choose the legal basis for recording this involvement",
        required=False,
        default=Involvement.LegalBasis.PUBLIC_TASK,
    )
    sensitive = _boolean(required=False, allow_null=True, default=None)
    lead_professional = _boolean(required=False, default=False)
    last_contact_date = _date("last contact date", required=False, allow_null=True, default=None)


class InvolvementChange(serializers.Serializer):
    last_contact_date = _date("last contact date", required=False, allow_null=False)
    lead_professional = _boolean(required=False, allow_null=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "Give a last contact date, or say whether you are the lead professional"
            )
        return attrs


class InvolvementEnd(serializers.Serializer):
    end_reason = _choice(Involvement.EndReason.choices, "Choose why the involvement is ending")
    end_date = _date("end date", required=False, allow_null=True, default=None)
