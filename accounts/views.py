"""Sign-in (password, then a code from an authenticator app), sign-out and invitations.
The same views serve the operator console and every council: each host has its own users."""

from __future__ import annotations

import base64

import segno
from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth import authenticate, login, logout, user_login_failed
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from accounts.backends import USER_BACKEND
from accounts.factors import factor_reset_pending, recovery_codes_issue
from accounts.forms import AcceptInvitationForm, CodeForm, SignInForm, errors_onto_form
from accounts.lockouts import last_attempt_warning, locked_out_message
from accounts.models import User
from accounts.ratelimits import sign_in_attempted, sign_in_failed, sign_in_wait
from accounts.redirects import next_url_or
from accounts.selectors import invitation_by_token, user_confirmed_device
from accounts.services import invitation_accept, invitation_device
from accounts.sso import password_sign_in_allowed, sso_for_council

PENDING_USER = "patchwork_pending_user"
NEXT_URL = "patchwork_next"
PASSWORD_OFF = (
    "Your council signs practitioners in with its own account: use the button to sign in with it"
)


def too_many_attempts(request: HttpRequest, wait: int) -> HttpResponse:
    """429, before any password is hashed or code checked, saying how long to wait."""
    minutes = -(-wait // 60)
    wait_text = f"{wait} seconds" if wait < 60 else f"{minutes} minute{'s' if minutes > 1 else ''}"
    response = render(
        request, "accounts/too_many_attempts.html", {"wait_text": wait_text}, status=429
    )
    response["Retry-After"] = str(wait)
    return response


def sign_in(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST or None)
    warning = None
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"].lower()
        wait = sign_in_wait(request, email)
        if wait is not None:
            return too_many_attempts(request, wait)
        sign_in_attempted(request, email)
        user = authenticate(request, email=email, password=form.cleaned_data["password"])
        if user is None:
            sign_in_failed(request)
        if getattr(request, "axes_locked_out", False):
            form.add_error(None, locked_out_message(email))
        elif user is None:
            form.add_error(None, "The email address or password is not right")
            warning = last_attempt_warning(request, email)
        elif not password_sign_in_allowed(user):
            form.add_error(None, PASSWORD_OFF)
        elif user_confirmed_device(user) is None and factor_reset_pending(user) is not None:
            # An administrator reset their authenticator: they set up a new one now.
            request.session.cycle_key()
            request.session[PENDING_USER] = user.pk
            request.session[NEXT_URL] = next_url_or(request, "/")
            return redirect("accounts:sign_in_enrol")
        elif user_confirmed_device(user) is None:
            form.add_error(
                None,
                "Your account has no authenticator app set up. "
                "Ask your administrator to send you a new invitation.",
            )
        else:
            request.session.cycle_key()
            request.session[PENDING_USER] = user.pk
            request.session[NEXT_URL] = next_url_or(request, "/")
            return redirect("accounts:sign_in_code")
    context = {"form": form, "warning": warning, "single_sign_on": sso_for_council()}
    return render(request, "accounts/sign_in.html", context)


def sign_in_code(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(PENDING_USER)
    user = User.objects.filter(pk=pending, is_active=True).first() if pending else None
    if user is None:
        return redirect("accounts:sign_in")
    form = CodeForm(request.POST or None)
    warning = None
    if request.method == "POST" and form.is_valid():
        credentials = {"email": user.email}
        device = user_confirmed_device(user)
        code = form.cleaned_data["code"].replace(" ", "").strip()
        wait = sign_in_wait(request, user.email)
        if wait is not None:
            return too_many_attempts(request, wait)
        sign_in_attempted(request, user.email)
        if not AxesProxyHandler.is_allowed(request, credentials):
            sign_in_failed(request)
            form.add_error(None, locked_out_message(user.email))
        elif device is not None and device.verify_token(code):
            next_url = request.session.get(NEXT_URL, "/")
            login(request, user, backend=USER_BACKEND)
            otp_login(request, device)
            return redirect(next_url)
        else:
            sign_in_failed(request)
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            form.add_error("code", "The code is not right. Enter the code your app shows now.")
            warning = last_attempt_warning(request, user.email)
    return render(request, "accounts/sign_in_code.html", {"form": form, "warning": warning})


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("accounts:sign_in")


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    invite = invitation_by_token(token)
    if invite is None:
        return render(request, "accounts/invitation_invalid.html", status=404)
    device = invitation_device(invitation=invite)
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            accepted = invitation_accept(
                invitation=invite,
                password=form.cleaned_data["password"],
                code=form.cleaned_data["code"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc, fieldless="password")
        else:
            # Recovery codes are offered at enrolment, shown once (decision 0019).
            codes = recovery_codes_issue(user=accepted)
            context = {"invited": accepted, "codes": codes}
            return render(request, "accounts/invitation_done.html", context)
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=4, title="QR code")
    context = {
        "form": form,
        "invited": invite.user,
        "qr_svg": qr_svg,
        "secret": base64.b32encode(device.bin_key).decode(),
    }
    return render(request, "accounts/invitation.html", context)
