"""Pages inside a council's host. Thin: they call services and selectors."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.access import role_required, verified_required
from accounts.forms import InviteUserForm
from accounts.models import User
from accounts.selectors import users_for_admin
from accounts.services import user_invite
from core.forms import OrganisationForm
from core.models import Organisation
from core.selectors import organisation_for_admin, organisations_list
from core.services import organisation_create

admin_required = role_required(User.Role.COUNCIL_ADMIN)


@verified_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html")


def _apply_errors(form, exc: ValidationError) -> None:  # type: ignore[no-untyped-def]
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@admin_required
def users(request: HttpRequest) -> HttpResponse:
    form = InviteUserForm(request.POST or None)
    invitation_url = None
    if request.method == "POST" and form.is_valid():
        try:
            invited, token = user_invite(invited_by=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            invitation_url = request.build_absolute_uri(f"/invitation/{token}/")
            messages.success(request, f"{invited.full_name} is invited.")
            form = InviteUserForm()
    context = {"form": form, "users": users_for_admin(), "invitation_url": invitation_url}
    return render(request, "core/users.html", context)


@admin_required
def organisations(request: HttpRequest) -> HttpResponse:
    form = OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        sensitive = data["sensitive_service"] or data["agency_type"] in Organisation.SENSITIVE_BY_DEFAULT
        try:
            organisation = organisation_create(
                name=data["name"],
                agency_type=data["agency_type"],
                sensitive_service=sensitive,
                phone=data["phone"],
                secure_email=data["secure_email"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"{organisation.name} is added.")
            return redirect("core:organisations")
    context = {"form": form, "organisations": organisations_list()}
    return render(request, "core/organisations.html", context)


@admin_required
def organisation_detail(request: HttpRequest, organisation_id: int) -> HttpResponse:
    organisation = organisation_for_admin(organisation_id)
    return render(request, "core/organisation_detail.html", {"organisation": organisation})
