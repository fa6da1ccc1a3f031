"""Django's ModelBackend, reading the session's user by one plain statement.

Every signed-in request loads its user; the rule is ModelBackend's own and unchanged (a
user who is gone or deactivated is no user, so a leaver's session is refused on the next
request); only the read is a plain statement (decision 0027)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError

from accounts.models import User
from accounts.reads import model_by_id

# The backend a session records at sign-in (django.contrib.auth.login's `backend`).
USER_BACKEND = "accounts.backends.UserBackend"


class UserBackend(ModelBackend):
    def get_user(self, user_id: Any) -> User | None:
        try:
            pk = User._meta.pk.to_python(user_id)
        except (ValidationError, TypeError, ValueError):  # an id that is no id: no user
            return None
        user = model_by_id(User, pk)
        return user if user is not None and self.user_can_authenticate(user) else None
