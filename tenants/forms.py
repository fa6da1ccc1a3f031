from django import forms


class OnboardCouncilForm(forms.Form):
    name = forms.CharField(
        label="Council name",
        max_length=120,
        error_messages={"required": "Enter the council's name"},
    )
    code = forms.CharField(
        label="ONS code",
        help_text="A letter and eight digits, like E06000043",
        max_length=9,
        error_messages={"required": "Enter the council's ONS code"},
        widget=forms.TextInput(attrs={"class": "govuk-input--width-10", "spellcheck": "false"}),
    )
    slug = forms.CharField(
        label="Web address name",
        help_text="Optional: made from the name if left blank, like brighton-and-hove",
        max_length=63,
        required=False,
        widget=forms.TextInput(attrs={"class": "govuk-input--width-20", "spellcheck": "false"}),
    )
    admin_name = forms.CharField(label="First administrator's full name", max_length=150)
    admin_email = forms.EmailField(
        label="First administrator's email address",
        error_messages={"required": "Enter the administrator's email address"},
    )
