"""Single sign-on pages: start (off to the council's provider), the provider's return, and
the administrator's settings. Thin: the rules are in accounts.sso. On the operator console
there is no single sign-on, so each of these pages is a 404 there."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_otp import login as otp_login

from accounts import sso
from accounts.access import admin_required
from accounts.backends import USER_BACKEND
from accounts.forms import errors_onto_form
from accounts.models import User
from accounts.ratelimits import SIGN_IN_ADDRESS, address_key, limit_wait, sign_in_failed
from accounts.redirects import next_url_or
from accounts.selectors import user_confirmed_device
from accounts.sso_forms import SingleSignOnForm
from accounts.views import NEXT_URL, PENDING_USER, too_many_attempts


def redirect_uri(request: HttpRequest) -> str:
    """The address the council registers with its provider (exactly, scheme to slash)."""
    return request.build_absolute_uri(reverse("accounts:sso_callback"))


def sso_start(request: HttpRequest) -> HttpResponse:
    provider = sso.sso_for_council()
    if provider is None:
        raise Http404("This council does not use single sign-on")
    wait = limit_wait(SIGN_IN_ADDRESS, address_key(request))
    if wait is not None:
        return too_many_attempts(request, wait)
    try:
        url = sso.sign_in_start(
            request,
            sso=provider,
            redirect_uri=redirect_uri(request),
            next_url=next_url_or(request, "/"),
        )
    except sso.SignInRefused as refused:
        return render(
            request, "accounts/sso_refused.html", {"message": refused.message}, status=503
        )
    return redirect(url)


def sso_callback(request: HttpRequest) -> HttpResponse:
    provider = sso.sso_for_council()
    if provider is None:
        raise Http404("This council does not use single sign-on")
    # A refused answer counts as a failed sign-in from this address, as a wrong password
    # does, so a flood of forged answers is stopped before any is checked; the provider's
    # own trouble (down, misconfigured) is nobody's attempt and counts for nothing.
    wait = limit_wait(SIGN_IN_ADDRESS, address_key(request))
    if wait is not None:
        return too_many_attempts(request, wait)
    try:
        signed_in = sso.sign_in_finish(request, sso=provider, redirect_uri=redirect_uri(request))
    except sso.SignInRefused as refused:
        if refused.reason not in sso.PROVIDER_TROUBLE:
            sign_in_failed(request)
        context = {"message": refused.message, "provider": provider}
        return render(request, "accounts/sso_refused.html", context, status=403)
    user = signed_in.user
    if signed_in.provider_checked_second_factor:
        login(request, user, backend=USER_BACKEND)
        otp_login(request, sso.provider_second_factor(user))
        return redirect(signed_in.next_url)
    # Patchwork's own second factor, exactly as after a password: the code, or a new
    # authenticator after an administrator's reset.
    request.session.cycle_key()
    request.session[PENDING_USER] = user.pk
    request.session[NEXT_URL] = signed_in.next_url
    if user_confirmed_device(user) is None:
        return redirect("accounts:sign_in_enrol")
    return redirect("accounts:sign_in_code")


@admin_required
def sso_settings(request: HttpRequest) -> HttpResponse:
    if not sso.in_council():
        raise Http404("Single sign-on belongs to a council")
    current = sso.sso_settings()
    form = SingleSignOnForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        admin = request.user
        assert isinstance(admin, User)
        try:
            sso.sso_configure(configured_by=admin, **data)
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, "Single sign-on settings saved.")
            return redirect("accounts:sso_settings")
    context = {"form": form, "current": current, "redirect_uri": redirect_uri(request)}
    return render(request, "accounts/sso_settings.html", context)
