"""Invitations as the administrator follows them: each user's invitations and their state."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import Invitation, User


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
