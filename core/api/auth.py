"""Who is calling the API: a signed-in browser user who has passed the second factor, or a
system client holding a bearer token issued to such a user.

Tokens need no table: each is a `TimestampSigner` signature over the user's id, so it
expires by itself (API_TOKEN_HOURS). The current council's schema is part of the salt,
because every council shares SECRET_KEY and user ids repeat from council to council: a
Brighton token must never verify at Staffordshire. The token also carries a digest of the
user's password hash, so changing the password revokes every token issued before."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import User
from core.audit import audit_record
from core.feeds import source_system_by_token
from core.models import SourceSystem
from core.selectors import can_read_records

TOKEN_SALT = "patchwork.api-token"


def _token_lifetime() -> timedelta:
    return timedelta(hours=settings.API_TOKEN_HOURS)


def _signer() -> signing.TimestampSigner:
    schema_name = connection.schema_name  # type: ignore[attr-defined]
    return signing.TimestampSigner(salt=f"{TOKEN_SALT}:{schema_name}")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


def api_token_issue(*, user: User) -> IssuedToken:
    """Issue a bearer token for `user`, valid in the current council only, for
    API_TOKEN_HOURS. Only people who may read records get one; each issue is audited."""
    if not can_read_records(user):
        raise PermissionDenied("Only practitioners and managers can use the API")
    token = _signer().sign_object({"user": user.pk, "auth": user.get_session_auth_hash()})
    expires_at = timezone.now() + _token_lifetime()
    audit_record(
        actor=user, action="api_token_issued", detail={"expires_at": expires_at.isoformat()}
    )
    return IssuedToken(token=token, expires_at=expires_at)


def api_token_user(token: str) -> User | None:
    """The active user a token was issued to in this council, or None when the token is
    forged, expired, from another council, or issued before a password change."""
    try:
        payload = _signer().unsign_object(token, max_age=_token_lifetime())
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), int):
        return None
    user = User.objects.filter(pk=payload["user"], is_active=True).first()
    if user is None or not hmac.compare_digest(
        str(payload.get("auth", "")), user.get_session_auth_hash()
    ):
        return None
    return user


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`, with a token from POST /api/v1/tokens/."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Send the token as: Authorization: Bearer <token>")
        user = api_token_user(parts[1].decode("ascii", errors="replace"))
        if user is None:
            raise AuthenticationFailed(
                "This token is not valid here or has expired: ask for a new one"
            )
        return (user, None)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class VerifiedSessionAuthentication(SessionAuthentication):
    """The browser's session, only once the user has passed the second factor (the same
    rule as the pages). CSRF is enforced as for any session-authenticated write."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        is_verified = getattr(result[0], "is_verified", None)
        if is_verified is None or not is_verified():
            return None
        return result


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/v1/tokens/ (asked for while signed in "
            "with the second factor). Valid for this council only, for "
            f"{settings.API_TOKEN_HOURS} hours, or until the user's password changes.",
        }


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.auth.VerifiedSessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The browser session of a user signed in with password and "
            "second factor; writes need the X-CSRFToken header.",
        }


class ImportTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer pwi_…`: a source system's import token (decision 0009). It
    names no user and is accepted by the import endpoints only; everywhere else it is
    refused like any invalid token. `request.auth` is the source system."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, SourceSystem] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Send the token as: Authorization: Bearer <token>")
        source = source_system_by_token(parts[1].decode("ascii", errors="replace"))
        if source is None:
            raise AuthenticationFailed(
                "This import token is not valid here: ask the council's administrator"
            )
        return (AnonymousUser(), source)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="imports"'


class HasImportToken(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, SourceSystem)


class ImportTokenScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.auth.ImportTokenAuthentication"
    name = "importToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A source system's import token, issued once by a council "
            "administrator at /admin/imports/systems/new/. It starts and follows that "
            "system's imports and does nothing else.",
        }
