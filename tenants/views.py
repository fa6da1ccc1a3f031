"""The operator console, on the platform's own host. Operators are accounts in the public
schema; no council user can sign in here."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import operator_required
from accounts.forms import errors_onto_form
from tenants.forms import OnboardCouncilForm
from tenants.models import Council
from tenants.selectors import council_by_code, council_url, councils_list, migration_states
from tenants.services import council_onboard, council_resume, council_suspend


@operator_required
def console(request: HttpRequest) -> HttpResponse:
    councils = list(councils_list())
    states = migration_states(c.schema_name for c in councils)
    rows = [
        {"council": c, "url": council_url(c), "migrations": states[c.schema_name]} for c in councils
    ]
    return render(request, "tenants/console.html", {"rows": rows})


@operator_required
def council_new(request: HttpRequest) -> HttpResponse:
    form = OnboardCouncilForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            onboarded = council_onboard(**form.cleaned_data)
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            return render(request, "tenants/onboarded.html", {"onboarded": onboarded})
    return render(request, "tenants/council_new.html", {"form": form})


def _council_or_404(code: str) -> Council:
    council = council_by_code(code)
    if council is None:
        raise Http404("No council with that code")
    return council


@require_POST
@operator_required
def council_suspend_view(request: HttpRequest, code: str) -> HttpResponse:
    council = council_suspend(council=_council_or_404(code))
    messages.success(request, f"{council.name} is suspended. Its users cannot sign in.")
    return redirect("tenants:console")


@require_POST
@operator_required
def council_resume_view(request: HttpRequest, code: str) -> HttpResponse:
    council = council_resume(council=_council_or_404(code))
    messages.success(request, f"{council.name} is active again.")
    return redirect("tenants:console")
