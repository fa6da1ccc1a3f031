"""Invitations as the administrator follows them: the signal sent when one is accepted (the
apps above audit it; accounts imports none of them) and the latest invitation of each user."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.dispatch import Signal

from accounts.models import Invitation, User

# Sent inside the acceptance's transaction with `invitation`: core writes the audit event.
invitation_accepted = Signal()


def invitation_latest(user: User) -> Invitation | None:
    """The user's newest invitation (earlier ones were replaced when it was sent)."""
    return Invitation.objects.filter(user=user).order_by("-created_at", "-pk").first()


def invitations_of(user: User) -> QuerySet[Invitation]:
    """Every invitation the user was sent, newest first (each with its `state`)."""
    return Invitation.objects.filter(user=user).order_by("-created_at", "-pk")


def users_with_latest_invitation() -> QuerySet[User]:
    """Every user of this council, each with `invitation_id` (their newest invitation's id,
    or None) for the administrators' list."""
    newest = Invitation.objects.filter(user=OuterRef("pk")).order_by("-created_at", "-pk")
    return User.objects.annotate(invitation_id=Subquery(newest.values("pk")[:1])).order_by(
        "full_name", "email"
    )
