"""Django's database sessions, read by one plain statement.

Every signed-in request reads its session; the ORM spent more of the request's CPU building
that one-row query than the database spent answering it. Same table, same rows, same
expiry rule (`expire_date` after now), so switching engines signs nobody out.

A session made before the user was read by `accounts.backends.UserBackend` names Django's
ModelBackend as the backend that signed it in; it is read as UserBackend's (the same rule
over the same users), so the upgrade signs nobody out either."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.backends import USER_BACKEND
from accounts.reads import plain_cursor

# The backend sessions named before decision 0027.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
SESSION_SQL = "SELECT session_data FROM django_session WHERE session_key = %s AND expire_date > %s"


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self) -> Session | None:
        key = self.session_key
        row = None
        if key is not None:
            with plain_cursor() as cursor:
                cursor.execute(SESSION_SQL, [key, timezone.now()])
                row = cursor.fetchone()
        if key is None or row is None:
            self._session_key = None
            return None
        return Session(session_key=key, session_data=row[0])

    def load(self) -> dict[str, Any]:
        data: dict[str, Any] = super().load()
        if data.get(BACKEND_SESSION_KEY) == MODEL_BACKEND:
            data[BACKEND_SESSION_KEY] = USER_BACKEND
        return data
