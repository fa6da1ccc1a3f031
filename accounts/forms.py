from django import forms
from django.core.exceptions import ValidationError

from accounts.models import User


def errors_onto_form(
    form: forms.Form, exc: ValidationError, *, fieldless: str | None = None
) -> None:
    """Show a service's ValidationError on the form that asked for it: each message beside
    its field (at the top when this form has no such field), and a message that names no
    field at the top, or beside the field `fieldless` (a password rule's, say)."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(fieldless, exc.messages)


class SignInForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        error_messages={"required": "Enter your email address", "invalid": "Enter a valid email"},
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        error_messages={"required": "Enter your password"},
    )


class CodeForm(forms.Form):
    code = forms.RegexField(
        label="Code from your authenticator app",
        regex=r"^\s*[0-9]{3}\s?[0-9]{3}\s*$",
        error_messages={
            "required": "Enter the 6-digit code from your authenticator app",
            "invalid": "The code is 6 digits, like 123456",
        },
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "class": "govuk-input--width-10",
            }
        ),
    )


class AcceptInvitationForm(forms.Form):
    password = forms.CharField(
        label="Create a password",
        help_text="At least 12 characters. A few unrelated words make a strong password.",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": "Create a password"},
    )
    password_again = forms.CharField(
        label="Type the password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": "Type the password again"},
    )
    code = CodeForm.base_fields["code"]

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if cleaned.get("password") != cleaned.get("password_again"):
            self.add_error("password_again", "The two passwords are not the same")
        return cleaned


class InviteUserForm(forms.Form):
    full_name = forms.CharField(label="Full name", max_length=150)
    email = forms.EmailField(label="Work email address")
    role = forms.ChoiceField(
        label="Role",
        choices=[(r.value, r.label) for r in User.Role if r != User.Role.OPERATOR],
    )
