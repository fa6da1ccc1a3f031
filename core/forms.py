from django import forms

from core.models import Organisation


class OrganisationForm(forms.Form):
    name = forms.CharField(
        label="Organisation name", max_length=200,
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
