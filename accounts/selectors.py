"""Reads for accounts."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Invitation, User
from accounts.services import token_hash


def invitation_by_token(token: str) -> Invitation | None:
    """The usable invitation with this token, or None (unknown, used and expired look the
    same to whoever holds the link)."""
    invitation = (
        Invitation.objects.select_related("user").filter(token_hash=token_hash(token)).first()
    )
    if invitation is None or not invitation.is_usable:
        return None
    return invitation


def user_confirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def users_for_admin() -> QuerySet[User]:
    return User.objects.order_by("full_name")


def user_for_admin(user_id: int) -> User:
    """A user of this council, or 404."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise Http404("No such user")
    return user
