from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone

from core.forms import GovukDateField
from core.models import Involvement, InvolvementRole
from federation.protocol import PURPOSES


class AgreementForm(forms.Form):
    partner_id = forms.ChoiceField(
        label="Partner council", error_messages={"required": "Choose the partner council"}
    )
    purposes = forms.MultipleChoiceField(
        label="Purposes",
        choices=sorted(PURPOSES.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one purpose"},
    )
    shareable_roles = forms.MultipleChoiceField(
        label="Involvement roles that may be shared",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one role that may be shared"},
    )
    legal_basis = forms.ChoiceField(label="Legal basis", choices=Involvement.LegalBasis.choices)
    demographic_matching = forms.BooleanField(
        label="Match on name and date of birth as well as NHS number", required=False
    )
    valid_from = GovukDateField(label="In force from", past_only=False)
    valid_until = GovukDateField(label="In force until", past_only=False)

    def __init__(self, *args: object, partners: list[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["partner_id"].choices = partners  # type: ignore[attr-defined]
        self.fields["shareable_roles"].choices = [  # type: ignore[attr-defined]
            (r.name, r.name) for r in InvolvementRole.objects.filter(active=True).order_by("name")
        ]
        today = timezone.localdate()
        self.initial.setdefault("valid_from", today)
        self.initial.setdefault("valid_until", today + timedelta(days=365))


class RevokeForm(forms.Form):
    reason = forms.CharField(
        label="Why is the agreement being revoked?",
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Say why the agreement is being revoked"},
    )


class CheckForm(forms.Form):
    purpose = forms.ChoiceField(
        label="Why are you checking?",
        choices=sorted(PURPOSES.items()),
        error_messages={"required": "Choose why you are checking"},
    )


class CouncilCardForm(forms.Form):
    card = forms.CharField(
        label="Council card",
        help_text="Paste the card the other deployment's operator exported (a JSON document)",
        widget=forms.Textarea(attrs={"rows": 10}),
        error_messages={"required": "Paste the council card"},
    )
