"""The administrator's form for the council's single sign-on settings."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from accounts.models import SingleSignOn


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,;]+", text) if w]


class SingleSignOnForm(forms.Form):
    name = forms.CharField(
        label="Name on the sign-in button",
        help_text="For example, Brighton and Hove City Council account",
        max_length=80,
        error_messages={"required": "Enter the name people know the sign-in by"},
    )
    issuer = forms.CharField(
        label="Issuer",
        help_text="For Microsoft Entra ID: https://login.microsoftonline.com/<tenant id>/v2.0",
        max_length=300,
        error_messages={"required": "Enter the issuer address"},
    )
    client_id = forms.CharField(
        label="Client (application) id",
        max_length=200,
        error_messages={"required": "Enter the client (application) id"},
    )
    client_secret = forms.CharField(
        label="Client secret",
        help_text="Leave empty to keep the secret already saved. It is stored encrypted "
        "and never shown again.",
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    email_domains = forms.CharField(
        label="Email domains signed in without an invitation",
        help_text="One or more, separated by spaces or commas (for example brighton-hove.gov.uk). "
        "People from these domains with a verified email become practitioners. Leave empty "
        "to let in only people you have invited.",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    email_claim = forms.CharField(
        label="Claim that holds the email address",
        initial="email",
        max_length=60,
        error_messages={"required": "Enter the claim that holds the email address"},
    )
    mfa_acr_values = forms.CharField(
        label="acr values that mean a second factor was checked",
        help_text="Optional. A token whose amr says mfa, otp, hwk (and similar) always counts.",
        required=False,
    )
    password_sign_in_for_practitioners = forms.BooleanField(
        label="Practitioners and managers may also sign in with a password", required=False
    )
    enabled = forms.BooleanField(label="Single sign-on is switched on", required=False)

    def __init__(self, data: Any = None, *, instance: SingleSignOn | None = None) -> None:
        initial: dict[str, Any] = {"password_sign_in_for_practitioners": True, "enabled": True}
        if instance is not None:
            initial = {
                "name": instance.name,
                "issuer": instance.issuer,
                "client_id": instance.client_id,
                "email_domains": " ".join(instance.email_domains),
                "email_claim": instance.email_claim,
                "mfa_acr_values": " ".join(instance.mfa_acr_values),
                "password_sign_in_for_practitioners": instance.password_sign_in_for_practitioners,
                "enabled": instance.enabled,
            }
        super().__init__(data, initial=initial)

    def clean_email_domains(self) -> list[str]:
        return _words(self.cleaned_data["email_domains"])

    def clean_mfa_acr_values(self) -> list[str]:
        return _words(self.cleaned_data["mfa_acr_values"])
