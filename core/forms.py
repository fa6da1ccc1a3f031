"""Forms for a council's pages, with messages in the GOV.UK style ("Enter…", "Choose…")."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.db.models import Q

from accounts.digits import ascii_int
from core.models import (
    FamilyRelationship,
    ImportRun,
    Involvement,
    InvolvementRole,
    Organisation,
    Person,
    Practitioner,
    RecordOpening,
    SourceSystem,
)
from core.selectors import SearchQuery
from core.validators import date_problem


class GovukDateWidget(forms.Widget):
    """The GOV.UK date input: three boxes (day, month, year) named `<name>_day` etc."""

    template_name = ""  # rendered by includes/field.html, never by Django's renderer
    govuk_kind = "date"  # which component includes/field.html draws (accounts' govuk tags)
    parts = ("day", "month", "year")

    def value_from_datadict(self, data: Any, files: Any, name: str) -> dict[str, str]:
        return {part: (data.get(f"{name}_{part}") or "").strip() for part in self.parts}

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not any(f"{name}_{part}" in data for part in self.parts)

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_day" if id_ else ""


class GovukDateField(forms.Field):
    """A date from three boxes, with the GOV.UK error messages ("must include a month",
    "must be a real date", "must be in the past")."""

    widget = GovukDateWidget

    def __init__(self, *, label: str, past_only: bool = True, **kwargs: Any) -> None:
        self.past_only = past_only
        super().__init__(label=label, **kwargs)

    def to_python(self, value: Any) -> date | None:
        if isinstance(value, date) or value is None:
            return value
        parts = {k: (value.get(k) or "") for k in GovukDateWidget.parts}
        if not any(parts.values()):
            return None
        missing = [k for k in GovukDateWidget.parts if not parts[k]]
        if missing:
            raise forms.ValidationError(f"{self.label} must include a {' and a '.join(missing)}")
        try:
            day, month, year = (ascii_int(parts[k]) or 0 for k in GovukDateWidget.parts)
            result = date(year, month, day)
        except ValueError as exc:
            raise forms.ValidationError(f"{self.label} must be a real date") from exc
        problem = date_problem(result, label=str(self.label), past_only=self.past_only)
        if problem:
            raise forms.ValidationError(problem)
        return result

    def validate(self, value: Any) -> None:
        if value is None and self.required:
            raise forms.ValidationError(f"Enter the {str(self.label).lower()}")


def _radios(choices: Any, label: str, required_message: str) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label,
        choices=choices,
        widget=forms.RadioSelect,
        error_messages={"required": required_message, "invalid_choice": required_message},
    )


class OrganisationForm(forms.Form):
    name = forms.CharField(
        label="Organisation name",
        max_length=200,
        error_messages={"required": "Enter the organisation's name"},
    )
    agency_type = forms.ChoiceField(label="Kind of agency", choices=Organisation.AgencyType.choices)
    sensitive_service = forms.BooleanField(
        label="Sensitive service",
        help_text="Tick if the fact of this service's involvement is itself sensitive "
        "(for example mental health or substance misuse). Mental health, substance misuse "
        "and sexual health services are sensitive whatever is ticked here.",
        required=False,
    )
    phone = forms.CharField(label="Phone (optional)", max_length=40, required=False)
    secure_email = forms.EmailField(label="Secure email (optional)", required=False)


class SearchForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number",
        required=False,
        max_length=20,
        help_text="10 digits, like 943 476 5919",
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "off",
                "spellcheck": "false",
                "class": "govuk-input--width-10",
            }
        ),
    )
    family_name = forms.CharField(
        label="Surname",
        required=False,
        max_length=100,
        help_text="Current or previous surname",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    given_name = forms.CharField(
        label="First name",
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    date_of_birth = GovukDateField(
        label="Date of birth", required=False, help_text="For example, 27 3 2015"
    )
    postcode = forms.CharField(
        label="Postcode",
        required=False,
        max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "off", "class": "govuk-input--width-10"}),
    )

    def query(self) -> SearchQuery:
        data = self.cleaned_data
        return SearchQuery(
            nhs_number=data["nhs_number"],
            family_name=data["family_name"],
            given_name=data["given_name"],
            date_of_birth=data["date_of_birth"],
            postcode=data["postcode"],
        )


class RecordOpeningForm(forms.Form):
    reason = _radios(
        RecordOpening.Reason.choices,
        "Why do you need to see this record?",
        "Choose the reason you need to see this record",
    )
    note = forms.CharField(
        label="Say in a sentence what this is about",
        help_text="The lead professional is told who opened the record and why.",
        max_length=RecordOpening.NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Say in a sentence why you need to see this record"},
    )


class ContactRequestForm(forms.Form):
    service = forms.CharField(widget=forms.HiddenInput)
    message = forms.CharField(
        label="What would you like to discuss?",
        help_text="The service decides whether to get in touch. Do not include case notes.",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Say in a sentence why you want to be put in touch"},
    )


class InvolvementForm(forms.Form):
    practitioner = forms.ModelChoiceField(
        label="Whose involvement is this?",
        queryset=Practitioner.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": "Choose yourself or one of your staff"},
    )
    role = forms.ModelChoiceField(
        label="Role",
        queryset=InvolvementRole.objects.none(),
        empty_label="Choose a role",
        error_messages={
            "required": "Choose your role from the list",
            "invalid_choice": "Choose your role from the list",
        },
    )
    start_date = GovukDateField(
        label="Start date",
        required=False,
        help_text="When your involvement began. Leave blank for today. For example, 3 9 2025",
    )
    legal_basis = _radios(
        Involvement.LegalBasis.choices,
        "Legal basis for recording this",
        "Choose the legal basis for recording this involvement",
    )
    lead_professional = forms.BooleanField(
        label="I am the lead professional",
        required=False,
        help_text="There can be only one lead professional for a person at a time.",
    )
    sensitive = forms.BooleanField(
        label="This involvement is sensitive",
        required=False,
        help_text="Others will see only that a sensitive service is involved, and must ask "
        "to be put in touch. Child-protection roles can never be sensitive.",
    )

    def __init__(
        self,
        *args: Any,
        practitioners: list[Practitioner],
        roles: Any,
        may_mark_sensitive: bool,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("initial", {"legal_basis": Involvement.LegalBasis.PUBLIC_TASK})
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = roles  # type: ignore[attr-defined]
        if len(practitioners) > 1:
            field = self.fields["practitioner"]
            field.queryset = Practitioner.objects.filter(  # type: ignore[attr-defined]
                pk__in=[p.pk for p in practitioners]
            ).select_related("user")
            field.label_from_instance = lambda p: (  # type: ignore[attr-defined]
                f"{p.user.full_name} ({p.job_title})"
            )
            field.initial = practitioners[0].pk
        else:
            del self.fields["practitioner"]
        if not may_mark_sensitive:
            del self.fields["sensitive"]


class InvolvementUpdateForm(forms.Form):
    last_contact_date = GovukDateField(
        label="Date of last contact",
        required=False,
        help_text="When you last saw or spoke to the person or their family. "
        "For example, 14 11 2025",
    )
    lead_professional = forms.BooleanField(label="Lead professional", required=False)


class InvolvementEndForm(forms.Form):
    end_reason = _radios(
        Involvement.EndReason.choices,
        "Why is this involvement ending?",
        "Choose why the involvement is ending",
    )
    end_date = GovukDateField(label="End date", required=False, help_text="Leave blank for today.")


class ProfileForm(forms.Form):
    organisation = forms.ModelChoiceField(
        label="Organisation",
        queryset=Organisation.objects.order_by("name"),
        empty_label="Choose your organisation",
        error_messages={
            "required": "Choose the organisation you work for",
            "invalid_choice": "Choose the organisation you work for",
        },
    )
    job_title = forms.CharField(
        label="Job title",
        max_length=120,
        error_messages={"required": "Enter a job title, like School nurse"},
    )
    team = forms.CharField(label="Team (optional)", max_length=120, required=False)
    work_phone = forms.CharField(
        label="Work phone (optional)",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    secure_email = forms.EmailField(
        label="Secure email (optional)",
        required=False,
        help_text="For example an nhs.net or gcsx address, if you have one",
        error_messages={"invalid": "Enter an email address like name@example.nhs.net"},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Closed organisations are not offered, except the one the practitioner is at now.
        field = self.fields["organisation"]
        field.queryset = Organisation.objects.filter(  # type: ignore[attr-defined]
            Q(closed_on__isnull=True) | Q(pk=self.initial.get("organisation"))
        ).order_by("name")
        field.label_from_instance = organisation_label  # type: ignore[attr-defined]


def organisation_label(organisation: Organisation) -> str:
    """A register may hold two schools of one name: the postcode tells them apart."""
    if organisation.register and organisation.postcode:
        return f"{organisation.name} ({organisation.postcode})"
    return organisation.name


class ContactRequestDecisionForm(forms.Form):
    decision = _radios(
        [("accept", "Accept: share my contact details"), ("decline", "Decline")],
        "Your answer",
        "Choose whether to accept or decline",
    )
    response = forms.CharField(
        label="Message to the requester (optional)",
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class RoleForm(forms.Form):
    name = forms.CharField(
        label="Role name",
        max_length=120,
        error_messages={"required": "Enter the role's name"},
    )
    child_protection = forms.BooleanField(
        label="This is a child-protection role",
        required=False,
        help_text="Child-protection involvements are always visible to anyone who can see "
        "the child and can never be marked sensitive.",
    )


class RoleChangeForm(forms.Form):
    name = forms.CharField(
        label="Role name", max_length=120, error_messages={"required": "Enter the role's name"}
    )
    active = forms.BooleanField(
        label="Offer this role",
        required=False,
        help_text="Untick to retire the role: it is no longer offered, and involvements "
        "already recorded with it keep it.",
    )


REGISTER_CHOICES = [
    (Organisation.Register.ODS_GP.value, "GP practices (epraccur)"),
    (Organisation.Register.ODS_TRUST.value, "NHS trusts (etr)"),
]


class RegisterImportForm(forms.Form):
    """One register file. The area is the council's: local authority codes for schools,
    postcode districts for NHS organisations."""

    register = forms.ChoiceField(
        label="Which file is it?",
        widget=forms.RadioSelect,
        choices=REGISTER_CHOICES,
        error_messages={
            "required": "Choose which file you are uploading",
            "invalid_choice": "Choose which file you are uploading",
        },
    )
    area = forms.CharField(
        label="Postcode districts your council covers",
        help_text="The first half of the postcodes, separated by spaces, like BN1 BN2 BN3",
        max_length=300,
        error_messages={"required": "Enter the postcode districts your council covers"},
    )
    file = forms.FileField(
        label="Upload the file",
        help_text="A CSV file, exactly as the register publishes it",
        error_messages={
            "required": "Choose the file to upload",
            "empty": "The file you chose is empty",
            "invalid": "Choose the file to upload",
        },
    )
    full_extract = forms.BooleanField(
        label="This is the whole file, not part of it",
        required=False,
        initial=True,
        help_text="Organisations in your area that are missing from a whole file are "
        "marked closed.",
    )

    def __init__(self, *args: Any, gias: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gias = gias
        if gias:
            del self.fields["register"]
            area = self.fields["area"]
            area.label = "Your council's local authority code"
            area.help_text = "Three digits, as in Get Information About Schools, like 846"
            area.error_messages["required"] = "Enter your council's local authority code, like 846"

    def register_value(self) -> str:
        if self.gias:
            return Organisation.Register.GIAS.value
        return str(self.cleaned_data["register"])


class PersonForm(forms.Form):
    """A child's or adult's details, to add them or to change them."""

    given_name = forms.CharField(
        label="First name",
        max_length=100,
        error_messages={"required": "Enter the first name"},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    family_name = forms.CharField(
        label="Surname",
        max_length=100,
        error_messages={"required": "Enter the surname"},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    date_of_birth = GovukDateField(
        label="Date of birth", required=False, help_text="For example, 27 3 2015"
    )
    sex = _radios(Person.Sex.choices, "Sex", "Choose female, male, other or not known")
    nhs_number = forms.CharField(
        label="NHS number (optional)",
        required=False,
        max_length=20,
        help_text="10 digits, like 943 476 5919",
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "off",
                "spellcheck": "false",
                "class": "govuk-input--width-10",
            }
        ),
    )
    address = forms.CharField(
        label="Address (optional)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    postcode = forms.CharField(
        label="Postcode (optional)",
        required=False,
        max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "off", "class": "govuk-input--width-10"}),
    )
    shielded = forms.BooleanField(
        label="Shield this record",
        required=False,
        help_text="Hide the record from search except for the person's own team (for example, "
        "a child at risk from a parent).",
    )

    def __init__(self, *args: Any, may_shield: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("sex", Person.Sex.UNKNOWN)
        super().__init__(*args, **kwargs)
        if not may_shield:
            del self.fields["shielded"]


class DeathForm(forms.Form):
    date_of_death = GovukDateField(label="Date of death", help_text="For example, 5 1 2025")


class RelativeForm(forms.Form):
    """How the relative stands to the person; "child" is recorded the other way round (the
    person is the relative's parent)."""

    CHILD = "child"
    kind = _radios(
        [*FamilyRelationship.Kind.choices, (CHILD, "Child")],
        "How are they related?",
        "Choose parent, carer, sibling, household member or child",
    )


class SourceSystemForm(forms.Form):
    """A council system that will send Patchwork its records."""

    name = forms.CharField(
        label="Name of the system",
        help_text="As your staff know it, like Liquidlogic LCS or SystmOne",
        max_length=100,
        error_messages={"required": "Enter the name of the system"},
    )


class FeedUploadForm(forms.Form):
    """A file from a source system, checked first in a dry run."""

    source = forms.ModelChoiceField(
        label="Which system is it from?",
        queryset=SourceSystem.objects.filter(active=True),
        widget=forms.RadioSelect,
        empty_label=None,
        error_messages={
            "required": "Choose the system the file is from",
            "invalid_choice": "Choose the system the file is from",
        },
    )
    file_format = forms.ChoiceField(
        label="What kind of file is it?",
        widget=forms.RadioSelect,
        choices=ImportRun.Format.choices,
        error_messages={
            "required": "Choose what kind of file it is",
            "invalid_choice": "Choose what kind of file it is",
        },
    )
    file = forms.FileField(
        label="Upload the file",
        help_text="The Patchwork CSV template, or a FHIR R4 Bundle in JSON",
        error_messages={
            "required": "Choose the file to upload",
            "empty": "The file you chose is empty",
            "invalid": "Choose the file to upload",
        },
    )
    full_snapshot = forms.BooleanField(
        label="This file holds everything the system knows (a full snapshot)",
        required=False,
        help_text="Involvements this system sent before and that are missing from a full "
        "snapshot are ended, as ended in the source system.",
    )
