"""Writes for accounts: invitations, accepting them, second-factor enrolment."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.auditing import account_audit
from accounts.models import Invitation, User


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def user_invite(
    *,
    email: str,
    full_name: str,
    role: str,
    invited_by: User | None = None,
) -> tuple[User, str]:
    """Create a user who cannot sign in until they accept the invitation; return the user
    and the one-time token for the link (shown once, stored only as a hash)."""
    email = email.strip().lower()
    full_name = full_name.strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": "Enter an email address like name@council.gov.uk"}) from exc
    if not full_name:
        raise ValidationError({"full_name": "Enter the person's full name"})
    if role not in User.Role.values:
        raise ValidationError({"role": "Choose a role from the list"})
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": f"{email} already has an account here"})
    user = User.objects.create_user(email, full_name=full_name, role=role)
    return user, invitation_issue(user=user, invited_by=invited_by)


def invitation_issue(*, user: User, invited_by: User | None = None) -> str:
    """A fresh one-time token for `user`; earlier unused invitations stop working (they are
    kept, revoked, so the administrator sees each one's state)."""
    Invitation.objects.filter(user=user, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token = secrets.token_urlsafe(32)
    Invitation.objects.create(
        user=user,
        token_hash=token_hash(token),
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=settings.INVITE_VALID_DAYS),
    )
    return token


@transaction.atomic
def invitation_reissue(*, user: User, invited_by: User | None = None) -> str:
    """A new one-time invitation for someone who cannot sign in yet: their first link was
    lost or has expired, or their council was brought back from an archive (which keeps no
    one's password or authenticator). Refused for someone who can sign in already: a link
    would let whoever holds it take over their account."""
    if user.has_usable_password():
        raise ValidationError(f"{user.full_name} can already sign in: no invitation is needed")
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return invitation_issue(user=user, invited_by=invited_by)


def invitation_device(*, invitation: Invitation) -> TOTPDevice:
    """The authenticator the invitee is setting up: made once, confirmed on acceptance."""
    device, _ = TOTPDevice.objects.get_or_create(
        user=invitation.user, name="Authenticator app", defaults={"confirmed": False}
    )
    return device


@transaction.atomic
def invitation_accept(*, invitation: Invitation, password: str, code: str) -> User:
    """Set the password and confirm the authenticator in one step: either both hold or
    nothing changes."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_usable:
        raise ValidationError("This invitation link has expired or has already been used")
    user = invitation.user
    validate_password(password, user)
    device = invitation_device(invitation=invitation)
    if not device.verify_token(code.strip().replace(" ", "")):
        raise ValidationError(
            {"code": "The code is not right: enter the 6 digits your authenticator app shows now"}
        )
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    account_audit(
        actor=user,
        action="invitation_accepted",
        user=user,
        detail={"invitation_id": invitation.pk},
    )
    return user
