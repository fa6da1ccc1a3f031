"""Forms for the administrators' people pages: inviting, a spreadsheet of invitations,
handing over a leaver's or mover's involvements, and moving a practitioner."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms

from core.models import Involvement, Organisation, Practitioner
from core.selectors import organisations_open

NO_ONE = ""


class InviteFileForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="One row per person, with the columns name, email, organisation, role and "
        "job title in the first row. Save from Excel as CSV UTF-8.",
        error_messages={"required": "Choose a CSV file to upload"},
    )


class HandOverForm(forms.Form):
    """One choice per current involvement: the colleague who takes it over, or no one."""

    def __init__(
        self,
        *args: object,
        involvements: Iterable[Involvement],
        successors: dict[int, list[Practitioner]],
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.successors = {p.pk: p for found in successors.values() for p in found}
        self.involvements = list(involvements)
        for involvement in self.involvements:
            lead = " and lead professional" if involvement.lead_professional else ""
            choices = [
                (str(p.pk), f"{p.user.full_name}, {p.job_title} ({p.organisation.name})")
                for p in successors.get(involvement.pk, [])
            ]
            self.fields[f"successor_{involvement.pk}"] = forms.ChoiceField(
                label=f"{involvement.person.full_name}: {involvement.role.name}{lead}",
                choices=[(NO_ONE, "No one: end the involvement"), *choices],
                required=False,
            )

    @property
    def hand_over_fields(self) -> list[forms.BoundField]:
        return [self[f"successor_{involvement.pk}"] for involvement in self.involvements]

    def chosen(self) -> dict[int, Practitioner | None]:
        out: dict[int, Practitioner | None] = {}
        for involvement in self.involvements:
            value = self.cleaned_data.get(f"successor_{involvement.pk}") or NO_ONE
            out[involvement.pk] = self.successors.get(int(value)) if value else None
        return out


class MoveForm(HandOverForm):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields = {
            "organisation": forms.ModelChoiceField(
                label="New organisation",
                queryset=organisations_open(),
                error_messages={"required": "Choose the organisation they move to"},
            ),
            "job_title": forms.CharField(
                label="Job title there",
                max_length=120,
                error_messages={"required": "Enter a job title, like School nurse"},
            ),
            **self.fields,
        }

    @property
    def organisation(self) -> Organisation:
        return self.cleaned_data["organisation"]
