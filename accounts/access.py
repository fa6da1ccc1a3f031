"""Who may open a page: a signed-in user who has passed the second factor, with a role.

django-otp's `otp_required` is the check for "signed in with password and second factor":
anyone else goes to LOGIN_URL (its OTP_LOGIN_URL default) with `next`. A deactivated user
needs no check of its own: the session's ModelBackend no longer loads them, so they are
anonymous, and never verified."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_otp.decorators import otp_required

from accounts.models import User

View = Callable[..., HttpResponse]


def role_required(*roles: str) -> Callable[[View], View]:
    """`otp_required`, and one of `roles`: a verified user with another role gets a 403."""

    def decorator(view: View) -> View:
        @otp_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.role not in roles:  # type: ignore[union-attr]
                raise PermissionDenied("Your role does not allow this")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# Each role check once, imported by every app's views, so a page's rule reads the same
# wherever it is written.
practitioner_required = role_required(User.Role.PRACTITIONER, User.Role.MANAGER)
admin_required = role_required(User.Role.COUNCIL_ADMIN)
governance_required = role_required(User.Role.COUNCIL_ADMIN, User.Role.IG_OFFICER)
operator_required = role_required(User.Role.OPERATOR)
