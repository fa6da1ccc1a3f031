"""Forms for the teamwork pages. Free text is short coordination text, never case notes."""

from __future__ import annotations

from django import forms

from core.forms import GovukDateField
from teamwork.models import COORDINATION_TEXT_MAX, ContactLog, Task

TEXT_HINT = (
    f"Up to {COORDINATION_TEXT_MAX} characters. Patchwork is for coordinating who does what "
    "and when: do not write case notes here."
)


class TimeInput(forms.TimeInput):
    input_type = "time"


class ContactForm(forms.Form):
    kind = forms.ChoiceField(choices=ContactLog.Kind.choices)
    contact_date = GovukDateField(label="Date of contact", required=False)


class TaskForm(forms.Form):
    text = forms.CharField(
        label="What needs doing",
        max_length=COORDINATION_TEXT_MAX,
        help_text=TEXT_HINT,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "Say in a few words what needs doing",
            "max_length": f"Keep it to {COORDINATION_TEXT_MAX} characters",
        },
    )
    assignee = forms.TypedChoiceField(label="Who will do it", coerce=int, choices=())
    due_date = GovukDateField(label="Due date", past_only=False)

    def __init__(self, *args: object, colleagues: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["assignee"].choices = colleagues  # type: ignore[attr-defined]


class TaskCloseForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(Task.Status.DONE, "Done"), (Task.Status.CANCELLED, "Cancel")]
    )


class MessageForm(forms.Form):
    text = forms.CharField(
        label="Message",
        max_length=COORDINATION_TEXT_MAX,
        help_text=TEXT_HINT,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "Write a short message",
            "max_length": f"Keep it to {COORDINATION_TEXT_MAX} characters",
        },
    )
    recipients = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=False)
    whole_team = forms.BooleanField(required=False)

    def __init__(self, *args: object, colleagues: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["recipients"].choices = colleagues  # type: ignore[attr-defined]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("whole_team") and not data.get("recipients"):
            self.add_error("recipients", "Choose who to send it to, or the whole team")
        return data


class BrokeredRequestForm(forms.Form):
    service = forms.TypedChoiceField(coerce=int, choices=())
    message = forms.CharField(
        label="Why you want to be put in touch",
        max_length=COORDINATION_TEXT_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=TEXT_HINT,
        error_messages={"required": "Say in a sentence why you want to be put in touch"},
    )

    def __init__(self, *args: object, services: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["service"].choices = [  # type: ignore[attr-defined]
            (i, f"Sensitive service {i + 1}") for i in range(services)
        ]


class MeetingForm(forms.Form):
    title = forms.CharField(
        label="Title",
        max_length=120,
        error_messages={"required": "Give the meeting a short title, like Core group"},
    )
    day = GovukDateField(label="Date of the meeting", past_only=False)
    starts = forms.TimeField(
        label="Starts at", widget=TimeInput, error_messages={"required": "Enter the start time"}
    )
    ends = forms.TimeField(
        label="Ends at", widget=TimeInput, error_messages={"required": "Enter the end time"}
    )
    place = forms.CharField(
        label="Place (optional if there is a link)", max_length=200, required=False
    )
    link = forms.URLField(
        label="Link to join (optional)",
        required=False,
        assume_scheme="https",
        error_messages={"invalid": "Enter the link in full, starting https://"},
    )
    invitees = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=False)
    whole_team = forms.BooleanField(required=False)

    def __init__(self, *args: object, colleagues: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["invitees"].choices = colleagues  # type: ignore[attr-defined]
