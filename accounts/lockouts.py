"""Lockouts (django-axes) as the people they lock out see them, and as administrators
undo them (decision 0019): a warning before the last attempt, the time a lockout has
left, the list of locked accounts, and unlocking one.

Two things stop someone signing in: the lockout (AXES_FAILURE_LIMIT failed attempts, the
password or the code, then LOCKOUT_MINUTES from the last failure, kept in PostgreSQL) and
the account rate limit (RATE_LIMIT_SIGN_IN_ACCOUNT attempts, failed or not, in a window from
the first, kept in Redis). The warning names whichever comes first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.auditing import account_audit
from accounts.models import User
from accounts.ratelimits import SIGN_IN_ACCOUNT, council_key, limit_clear, limit_left


def lockout_period() -> timedelta:
    return timedelta(hours=float(settings.AXES_COOLOFF_TIME))


def _minutes(delta: timedelta) -> str:
    minutes = max(1, -(-int(delta.total_seconds()) // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _attempts(email: str) -> tuple[int, datetime | None]:
    """Failures counted against `email` within the lockout period, and the last of them."""
    since = timezone.now() - lockout_period()
    found = AccessAttempt.objects.filter(username=email, attempt_time__gte=since).aggregate(
        failures=Sum("failures_since_start"), last=Max("attempt_time")
    )
    return int(found["failures"] or 0), found["last"]


def lockout_left(email: str) -> timedelta | None:
    """How long `email` stays locked out, or None when it is not locked out."""
    failures, last = _attempts(email)
    if last is None or failures < settings.AXES_FAILURE_LIMIT:
        return None
    return max(timedelta(0), last + lockout_period() - timezone.now())


def locked_out_message(email: str) -> str:
    left = lockout_left(email) or lockout_period()
    return (
        f"This account is locked after too many failed attempts. Try again in {_minutes(left)}, "
        "or ask your administrator to unlock it."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """django-axes' lockout page (AXES_LOCKOUT_CALLABLE), saying how long is left."""
    email = str((credentials or {}).get(settings.AXES_USERNAME_FORM_FIELD) or "").lower()
    left = lockout_left(email) if email else None
    context = {"left": _minutes(left or lockout_period())}
    return render(
        request,
        "accounts/locked_out.html",
        context,
        status=getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429),
    )


def last_attempt_warning(request: HttpRequest, email: str) -> str | None:
    """After a failed attempt: the warning to show when only one attempt is left before the
    lockout or the account's rate limit, whichever comes first; otherwise None."""
    email = email.lower()
    failures = AxesProxyHandler.get_failures(request, {settings.AXES_USERNAME_FORM_FIELD: email})
    before_lockout = settings.AXES_FAILURE_LIMIT - failures
    limited = limit_left(SIGN_IN_ACCOUNT, council_key(email))
    before_limit, window = limited if limited is not None else (before_lockout + 1, 0)
    if min(before_lockout, before_limit) != 1:
        return None
    if before_lockout <= before_limit:
        return (
            "You have 1 more attempt before your account is locked for "
            f"{_minutes(lockout_period())}."
        )
    return (
        "You have 1 more attempt before you must wait "
        f"{_minutes(timedelta(seconds=window))} to try again."
    )


@dataclass(frozen=True)
class LockedAccount:
    user: User
    failures: int
    locked_until: datetime


def locked_accounts() -> list[LockedAccount]:
    """The accounts of this council (or the platform's operators) locked out now, the
    soonest to unlock themselves first."""
    since = timezone.now() - lockout_period()
    rows = (
        AccessAttempt.objects.filter(attempt_time__gte=since)
        .values("username")
        .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
    )
    found = {row["username"]: row for row in rows if row["username"]}
    users = User.objects.filter(email__in=found)
    locked = [
        LockedAccount(
            user=user,
            failures=found[user.email]["failures"],
            locked_until=found[user.email]["last"] + lockout_period(),
        )
        for user in users
    ]
    return sorted(locked, key=lambda account: account.locked_until)


@transaction.atomic
def account_unlock(*, actor: User, user: User) -> None:
    """End `user`'s lockout and their account's rate-limit window, audited. Refused, with
    nothing changed, when the account is not locked."""
    if lockout_left(user.email) is None:
        raise ValidationError(f"{user.full_name}'s account is not locked")
    failures, _ = _attempts(user.email)
    AccessAttempt.objects.filter(username=user.email).delete()
    account_audit(actor=actor, action="account_unlocked", user=user, detail={"failures": failures})
    transaction.on_commit(lambda: limit_clear(SIGN_IN_ACCOUNT, council_key(user.email)))


def lockout_audit(sender: object, *, request: HttpRequest, username: str, **kwargs: object) -> None:
    """Audit the moment an account is locked (django-axes' `user_locked_out`): once, at the
    failure that reaches the limit, and only for an account that exists here, so attempts
    at made-up addresses, or at a locked account, write nothing (decision 0011: nobody
    unauthenticated fills the audit log)."""
    if getattr(request, "axes_failures_since_start", None) != settings.AXES_FAILURE_LIMIT:
        return
    user = User.objects.filter(email=str(username or "").lower()).first()
    if user is not None:
        account_audit(
            actor=None,
            action="account_locked",
            user=user,
            detail={"failures": settings.AXES_FAILURE_LIMIT},
        )
