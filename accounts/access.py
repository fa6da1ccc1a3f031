"""Who may open a page: a signed-in user who has passed the second factor, with a role."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.models import User

View = Callable[..., HttpResponse]


def verified_required(view: View) -> View:
    """Signed in with password *and* second factor; anyone else goes to the sign-in page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        # OTPMiddleware gives every request's user is_verified(): true after the second factor.
        verified = getattr(user, "is_verified", lambda: False)()
        if not (user.is_authenticated and user.is_active and verified):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def role_required(*roles: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @verified_required
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
