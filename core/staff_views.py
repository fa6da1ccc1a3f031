"""The administrators' people pages: each invitation's state, resend and revoke, invitations
from a spreadsheet, and leavers and movers (a manager may switch off their own staff's
accounts too). Thin: `core.invitations` and `core.leavers` hold the rules and the audit."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import admin_required, role_required
from accounts.forms import errors_onto_form
from accounts.invitations import (
    invitation_latest,
    invitations_of,
    users_with_latest_invitation,
)
from accounts.models import Invitation, User
from core import invitations, leavers
from core.staff_forms import HandOverForm, InviteFileForm, MoveForm

admin_or_manager_required = role_required(User.Role.COUNCIL_ADMIN, User.Role.MANAGER)


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def account_state(user: User, invitation: Invitation | None) -> str:
    """The account as the administrator sees it, in words."""
    if not user.is_active:
        return "Deactivated"
    if user.has_usable_password():
        return "Active"
    if invitation is None:
        return "Not invited"
    return {
        "sent": "Invitation sent",
        "expired": "Invitation expired",
        "revoked": "Invitation revoked",
        "accepted": "Active",
    }[invitation.state]


@admin_required
def invitations_list(request: HttpRequest) -> HttpResponse:
    """Every user and the state of their newest invitation."""
    people = list(users_with_latest_invitation())
    by_id = {i.pk: i for i in Invitation.objects.filter(pk__in=[u.invitation_id for u in people])}  # type: ignore[attr-defined]
    rows = [
        (user, by_id.get(user.invitation_id), account_state(user, by_id.get(user.invitation_id)))  # type: ignore[attr-defined]
        for user in people
    ]
    return render(request, "core/staff_invitations.html", {"rows": rows})


@admin_or_manager_required
def staff_user(request: HttpRequest, user_id: int) -> HttpResponse:
    user = leavers.staff_member_for_actor(_actor(request), user_id)
    invitation = invitation_latest(user)
    context = {
        "member": user,
        "invitation": invitation,
        "invitations": invitations_of(user),
        "state": account_state(user, invitation),
        "practitioner": leavers.profile_of(user),
        "involvements": leavers.involvements_to_hand_over(user),
    }
    return render(request, "core/staff_user.html", context)


@admin_required
@require_POST
def staff_invitation_resend(request: HttpRequest, user_id: int) -> HttpResponse:
    user = leavers.staff_member_for_actor(_actor(request), user_id)
    try:
        invitations.invitation_resend(actor=_actor(request), user=user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"A new invitation is emailed to {user.email}.")
    return redirect("core:staff_user", user.pk)


@admin_required
@require_POST
def staff_invitation_revoke(request: HttpRequest, user_id: int) -> HttpResponse:
    user = leavers.staff_member_for_actor(_actor(request), user_id)
    try:
        invitations.invitation_revoke(actor=_actor(request), user=user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The invitation for {user.full_name} is revoked.")
    return redirect("core:staff_user", user.pk)


@admin_required
def staff_invite_file(request: HttpRequest) -> HttpResponse:
    posted = request.method == "POST"
    form = InviteFileForm(request.POST if posted else None, request.FILES if posted else None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = invitations.staff_invite_csv(
                actor=_actor(request), data=form.cleaned_data["file"].read()
            )
        except ValidationError as exc:
            errors_onto_form(form, exc, fieldless="file")
        else:
            form = InviteFileForm()
    context = {
        "form": form,
        "report": report,
        "invited": sum(r.outcome != "refused" for r in report or []),
        "refused": sum(r.outcome == "refused" for r in report or []),
    }
    return render(request, "core/staff_invite_file.html", context)


@admin_or_manager_required
def staff_deactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    actor = _actor(request)
    user = leavers.staff_member_for_actor(actor, user_id)
    if not user.is_active:
        messages.info(request, f"{user.full_name}'s account is already deactivated.")
        return redirect("core:staff_user", user.pk)
    involvements = list(leavers.involvements_to_hand_over(user))
    form = HandOverForm(
        request.POST if request.method == "POST" else None,
        involvements=involvements,
        successors=leavers.successors_for(actor, user, involvements),
    )
    if request.method == "POST" and form.is_valid():
        try:
            done = leavers.staff_deactivate(actor=actor, user=user, successors=form.chosen())
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(
                request,
                f"{user.full_name}'s account is deactivated: they are signed out everywhere. "
                f"{len(done)} involvement{'s' if len(done) != 1 else ''} handed over or ended; "
                "each team is told.",
            )
            return redirect("core:staff_user", user.pk)
    return render(request, "core/staff_deactivate.html", {"member": user, "form": form})


@admin_required
def staff_move(request: HttpRequest, user_id: int) -> HttpResponse:
    actor = _actor(request)
    user = leavers.staff_member_for_actor(actor, user_id)
    involvements = list(leavers.involvements_to_hand_over(user))
    form = MoveForm(
        request.POST if request.method == "POST" else None,
        involvements=involvements,
        successors=leavers.successors_for(actor, user, involvements),
    )
    if request.method == "POST" and form.is_valid():
        try:
            leavers.practitioner_move(
                actor=actor,
                user=user,
                organisation=form.organisation,
                job_title=form.cleaned_data["job_title"],
                successors=form.chosen(),
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"{user.full_name} now works for {form.organisation.name}.")
            return redirect("core:staff_user", user.pk)
    return render(request, "core/staff_move.html", {"member": user, "form": form})
