"""The council administrator's set-up pages: the checklist, the register imports, the
policy and sensitive-services reviews, and the role list's defaults and edits. Thin: the
rules are in `core.setup`, `core.registers` and `core.services`."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import admin_required
from accounts.digits import ascii_int
from accounts.forms import errors_onto_form
from accounts.models import User
from core import registers, selectors, services
from core.forms import RegisterImportForm, RoleChangeForm
from core.models import CouncilPolicy, Organisation
from core.setup import REVIEWS, set_up_checklist, set_up_reviewed


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@admin_required
def set_up(request: HttpRequest) -> HttpResponse:
    return render(request, "core/set_up.html", {"checklist": set_up_checklist()})


@admin_required
@require_POST
def set_up_review(request: HttpRequest, step: str) -> HttpResponse:
    if step not in REVIEWS:
        raise Http404("No such step")
    set_up_reviewed(step=step, actor=_user(request))
    messages.success(request, "Thank you: that step is marked as done.")
    return redirect("core:set_up")


@admin_required
def set_up_policy(request: HttpRequest) -> HttpResponse:
    return render(request, "core/set_up_policy.html", {"policy": CouncilPolicy.current()})


def _register_import(request: HttpRequest, *, gias: bool) -> HttpResponse:
    policy = CouncilPolicy.current()
    default_register = Organisation.Register.GIAS if gias else Organisation.Register.ODS_GP
    initial = {
        "area": registers.register_area_of(policy, default_register),
        "full_extract": True,
    }
    form = RegisterImportForm(
        request.POST or None, request.FILES or None, gias=gias, initial=initial
    )
    report = None
    if request.method == "POST" and form.is_valid():
        register = form.register_value()
        try:
            area = registers.register_area_clean(register, form.cleaned_data["area"])
        except ValidationError as exc:
            form.add_error("area", exc)
        else:
            try:
                report = registers.register_import(
                    register=register,
                    binary=form.cleaned_data["file"],
                    area=area,
                    actor=_user(request),
                    full_extract=form.cleaned_data["full_extract"],
                )
            except ValidationError as exc:
                form.add_error("file", exc)
            else:
                registers.register_area_set(register=register, area=area)
    context = {"form": form, "report": report, "gias": gias}
    return render(request, "core/register_import.html", context)


@admin_required
def register_import(request: HttpRequest) -> HttpResponse:
    return _register_import(request, gias=True)


@admin_required
def register_import_nhs(request: HttpRequest) -> HttpResponse:
    return _register_import(request, gias=False)


@admin_required
def sensitive_services(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        chosen = request.POST.get("organisation", "")
        organisation = selectors.organisation_for_admin(ascii_int(chosen) or 0)
        sensitive = request.POST.get("sensitive") == "yes"
        try:
            services.organisation_sensitive_set(
                organisation=organisation, sensitive=sensitive, actor=_user(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"{organisation.name} is {'now' if sensitive else 'no longer'} a sensitive "
                "service.",
            )
        return redirect("core:sensitive_services")
    context = {
        "organisations": selectors.organisations_open(),
        "always_sensitive": Organisation.SENSITIVE_BY_DEFAULT,
        "reviewed_at": CouncilPolicy.current().sensitive_services_reviewed_at,
    }
    return render(request, "core/sensitive_services.html", context)


@admin_required
@require_POST
def roles_defaults(request: HttpRequest) -> HttpResponse:
    added = services.roles_defaults_add(actor=_user(request))
    if added:
        messages.success(
            request, f"{len(added)} default role{'s are' if len(added) > 1 else ' is'} added."
        )
    else:
        messages.info(request, "Your list already has every default role.")
    return redirect("core:roles")


@admin_required
def role_change(request: HttpRequest, role_id: int) -> HttpResponse:
    role = selectors.role_for_admin(role_id)
    form = RoleChangeForm(request.POST or None, initial={"name": role.name, "active": role.active})
    if request.method == "POST" and form.is_valid():
        try:
            services.role_change(
                role=role,
                name=form.cleaned_data["name"],
                active=form.cleaned_data["active"],
                actor=_user(request),
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{role.name} is saved.")
            return redirect("core:roles")
    return render(request, "core/role_change.html", {"form": form, "role": role})
