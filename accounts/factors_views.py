"""Pages for lockouts and second factors (decision 0019): signing in with a recovery code,
setting up a new authenticator after a reset, one's own recovery codes, and the
administrators' pages for locked accounts and second-factor resets. The same views serve a
council (its administrators, its users) and the operator console (operators): each host has
its own users, so an administrator only ever reaches their own council's accounts."""

from __future__ import annotations

import base64

import segno
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, user_login_failed
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.decorators import otp_required

from accounts.access import role_required
from accounts.backends import USER_BACKEND
from accounts.factors import (
    enrolment_device,
    factor_reset_pending,
    recovery_code_use,
    recovery_codes_issue,
    recovery_codes_left,
    second_factor_enrol,
    second_factor_reset,
)
from accounts.forms import CodeForm, errors_onto_form
from accounts.lockouts import (
    account_unlock,
    last_attempt_warning,
    locked_accounts,
    locked_out_message,
    lockout_period,
)
from accounts.models import User
from accounts.ratelimits import sign_in_attempted, sign_in_failed, sign_in_wait
from accounts.selectors import user_confirmed_device, user_for_admin, users_for_admin
from accounts.views import NEXT_URL, PENDING_USER, too_many_attempts

account_admin_required = role_required(User.Role.COUNCIL_ADMIN, User.Role.OPERATOR)
BACKEND = USER_BACKEND


class RecoveryCodeForm(forms.Form):
    code = forms.CharField(
        label="Recovery code",
        help_text="One of the codes you saved when you set up your account, like abcd 2345.",
        max_length=20,
        error_messages={"required": "Enter one of your recovery codes"},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


def _pending_user(request: HttpRequest) -> User | None:
    pending = request.session.get(PENDING_USER)
    return User.objects.filter(pk=pending, is_active=True).first() if pending else None


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def sign_in_recovery(request: HttpRequest) -> HttpResponse:
    """The code step with a recovery code instead of the authenticator's code: each code
    works once, and counts towards the lockout like a wrong code when it is not right."""
    user = _pending_user(request)
    if user is None or user_confirmed_device(user) is None:
        return redirect("accounts:sign_in")
    form = RecoveryCodeForm(request.POST or None)
    warning = None
    if request.method == "POST" and form.is_valid():
        credentials = {"email": user.email}
        wait = sign_in_wait(request, user.email)
        if wait is not None:
            return too_many_attempts(request, wait)
        sign_in_attempted(request, user.email)
        if not AxesProxyHandler.is_allowed(request, credentials):
            sign_in_failed(request)
            form.add_error(None, locked_out_message(user.email))
        else:
            device = recovery_code_use(user=user, code=form.cleaned_data["code"])
            if device is not None:
                next_url = request.session.get(NEXT_URL, "/")
                login(request, user, backend=BACKEND)
                otp_login(request, device)
                left = recovery_codes_left(user)
                messages.success(
                    request,
                    f"You signed in with a recovery code. You have {left} recovery "
                    f"code{'s' if left != 1 else ''} left.",
                )
                return redirect(next_url)
            sign_in_failed(request)
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            form.add_error("code", "That recovery code is not right, or it has been used")
            warning = last_attempt_warning(request, user.email)
    return render(request, "accounts/sign_in_recovery.html", {"form": form, "warning": warning})


def sign_in_enrol(request: HttpRequest) -> HttpResponse:
    """After the password, for someone whose authenticator an administrator reset: set up
    a new one, then see new recovery codes once."""
    user = _pending_user(request)
    if user is None or factor_reset_pending(user) is None:
        return redirect("accounts:sign_in")
    device = enrolment_device(user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = sign_in_wait(request, user.email)
        if wait is not None:
            return too_many_attempts(request, wait)
        sign_in_attempted(request, user.email)
        try:
            confirmed = second_factor_enrol(user=user, code=form.cleaned_data["code"])
        except ValidationError as exc:
            sign_in_failed(request)
            errors_onto_form(form, exc, fieldless="code")
        else:
            next_url = request.session.get(NEXT_URL, "/")
            login(request, user, backend=BACKEND)
            otp_login(request, confirmed)
            codes = recovery_codes_issue(user=user)
            context = {"codes": codes, "next_url": next_url, "first": True}
            return render(request, "accounts/recovery_codes_new.html", context)
    context = {
        "form": form,
        "qr_svg": segno.make(device.config_url, error="m").svg_inline(scale=4, title="QR code"),
        "secret": base64.b32encode(device.bin_key).decode(),
    }
    return render(request, "accounts/sign_in_enrol.html", context)


@otp_required
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """How many recovery codes are left; a new set on request (the old ones stop working)."""
    user = _user(request)
    if request.method == "POST":
        codes = recovery_codes_issue(user=user)
        return render(request, "accounts/recovery_codes_new.html", {"codes": codes})
    return render(request, "accounts/recovery_codes.html", {"left": recovery_codes_left(user)})


@account_admin_required
def locked(request: HttpRequest) -> HttpResponse:
    context = {
        "locked": locked_accounts(),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "lockout_minutes": int(lockout_period().total_seconds() // 60),
    }
    return render(request, "accounts/locked_accounts.html", context)


@require_POST
@account_admin_required
def unlock(request: HttpRequest, user_id: int) -> HttpResponse:
    user = user_for_admin(user_id)
    try:
        account_unlock(actor=_user(request), user=user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{user.full_name}'s account is unlocked. They can sign in now.")
    return redirect("accounts:locked_accounts")


@account_admin_required
def second_factors(request: HttpRequest) -> HttpResponse:
    rows = [
        {
            "user": user,
            "enrolled": user_confirmed_device(user) is not None,
            "reset": factor_reset_pending(user),
            "codes_left": recovery_codes_left(user),
        }
        for user in users_for_admin()
    ]
    return render(request, "accounts/second_factors.html", {"rows": rows})


@account_admin_required
def second_factor_reset_confirm(request: HttpRequest, user_id: int) -> HttpResponse:
    user = user_for_admin(user_id)
    if request.method == "POST":
        try:
            second_factor_reset(
                actor=_user(request),
                user=user,
                sign_in_url=request.build_absolute_uri(reverse("accounts:sign_in")),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"{user.full_name}'s authenticator app is reset. They are emailed, and set up "
                "a new one when they next sign in.",
            )
        return redirect("accounts:second_factors")
    return render(request, "accounts/second_factor_reset.html", {"subject": user})
