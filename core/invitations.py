"""Inviting people by email, one at a time or from a spreadsheet, and following each
invitation: resend, revoke, and see whether it was accepted, has expired or was revoked.

The link goes by email through the outbox (`core.delivery.email`), so it is sent once the
invitation is committed, retried while the mail server is down, and shown on the email
problems page if the address bounces. Inviting someone who left brings back the same
account (its history kept) rather than refusing the address. Every step is audited."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Invitation, User
from accounts.services import invitation_issue, invitation_reissue, token_hash, user_invite
from core.audit import audit_record
from core.delivery.email import email_enqueue
from core.delivery.notifications import council_link
from core.models import Organisation
from core.services import practitioner_profile_set
from tenants.db import current_schema
from tenants.models import Council

# The roles an administrator may give; operators belong to the platform, never a council.
INVITABLE_ROLES = [role for role in User.Role if role != User.Role.OPERATOR]
# Roles that work with children and so have a profile (organisation and job title).
PROFILE_ROLES = {User.Role.PRACTITIONER, User.Role.MANAGER}
CSV_COLUMNS = ("name", "email", "organisation", "role", "job title")
CSV_MAX_ROWS = 1000
CSV_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Invited:
    user: User
    token: str
    reactivated: bool


def _council_name() -> str:
    council = Council.objects.filter(schema_name=current_schema()).first()
    return council.name if council is not None else "your council"


def _invitation_email(*, user: User, token: str, invited_by: User | None) -> None:
    """Queue the email with the link; sent once the invitation is committed."""
    council = _council_name()
    link = council_link(f"/invitation/{token}/")
    sender = f"{invited_by.full_name} invited you" if invited_by else "You are invited"
    body = (
        f"Dear {user.full_name},\n\n"
        f"{sender} to Patchwork at {council}: the service that shows who else works with "
        "a child or family, and how to reach them.\n\n"
        f"Set up your account (a password and an authenticator app) here:\n\n{link}\n\n"
        f"The link works once and expires in {settings.INVITE_VALID_DAYS} days. If you were "
        "not expecting it, ignore this email: nothing happens until the link is used.\n"
    )
    email_enqueue(
        # The link's hash: the same invitation is never emailed twice.
        key=f"invitation:{token_hash(token)}",
        kind="invitation",
        to_email=user.email,
        subject=f"Your Patchwork account at {council}",
        body=body,
    )


def _organisation_check(role: str, organisation: Organisation | None, job_title: str) -> None:
    if organisation is None:
        return
    if role not in PROFILE_ROLES:
        raise ValidationError(
            {"organisation": "Only practitioners and managers have an organisation: leave it empty"}
        )
    if not job_title.strip():
        raise ValidationError({"job_title": "Enter a job title, like School nurse"})


@transaction.atomic
def staff_invite(
    *,
    actor: User,
    full_name: str,
    email: str,
    role: str,
    organisation: Organisation | None = None,
    job_title: str = "",
) -> Invited:
    """Invite someone by email. Someone who left (deactivated) is invited back to the same
    account, keeping their history; someone who can sign in, or whose invitation is still
    waiting, is refused with what to do instead."""
    if actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only an administrator can invite people")
    email = email.strip().lower()
    if role not in INVITABLE_ROLES:
        raise ValidationError({"role": "Choose a role from the list"})
    _organisation_check(role, organisation, job_title)
    existing = User.objects.select_for_update().filter(email=email).first()
    if existing is not None and existing.is_active:
        if existing.has_usable_password():
            raise ValidationError({"email": f"{email} already has an account here"})
        raise ValidationError(
            {
                "email": f"{email} is already invited: resend the invitation from "
                "their page if it did not arrive"
            }
        )
    if existing is not None:
        if not full_name.strip():
            raise ValidationError({"full_name": "Enter the person's full name"})
        existing.full_name = full_name.strip()
        existing.role = role
        existing.save(update_fields=["full_name", "role"])
        user, token = existing, invitation_issue(user=existing, invited_by=actor)
    else:
        user, token = user_invite(email=email, full_name=full_name, role=role, invited_by=actor)
    if organisation is not None:
        practitioner_profile_set(user=user, organisation=organisation, job_title=job_title)
    _invitation_email(user=user, token=token, invited_by=actor)
    audit_record(
        actor=actor,
        action="user_reactivation_invited" if existing is not None else "user_invited",
        detail={
            "user_id": user.pk,
            "email": user.email,
            "role": role,
            "organisation_id": organisation.pk if organisation is not None else None,
        },
    )
    return Invited(user=user, token=token, reactivated=existing is not None)


@transaction.atomic
def invitation_resend(*, actor: User, user: User) -> str:
    """A new link by email for someone who cannot sign in yet; the old link stops working.
    Returns the new token."""
    if actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only an administrator can send invitations")
    token = invitation_reissue(user=user, invited_by=actor)
    _invitation_email(user=user, token=token, invited_by=actor)
    audit_record(
        actor=actor,
        action="invitation_resent",
        detail={"user_id": user.pk, "email": user.email},
    )
    return token


@transaction.atomic
def invitation_revoke(*, actor: User, user: User) -> Invitation:
    """Stop the user's waiting invitation from working: its link then opens nothing."""
    if actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only an administrator can revoke invitations")
    waiting = (
        Invitation.objects.select_for_update()
        .filter(
            user=user,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .order_by("-created_at")
        .first()
    )
    if waiting is None:
        raise ValidationError(f"{user.full_name} has no invitation waiting to be accepted")
    waiting.revoked_at = timezone.now()
    waiting.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="invitation_revoked",
        detail={"user_id": user.pk, "email": user.email, "invitation_id": waiting.pk},
    )
    return waiting


# --- Many at once, from a spreadsheet -----------------------------------------------------


@dataclass(frozen=True)
class RowReport:
    """What became of one row of the file: `outcome` is invited, reactivated or refused."""

    line: int
    name: str
    email: str
    outcome: str
    reason: str = ""


def _role_from(text: str) -> str:
    wanted = text.strip().lower()
    for role in INVITABLE_ROLES:
        if wanted in {role.value, role.label.lower()}:
            return role.value
    choices = ", ".join(role.label for role in INVITABLE_ROLES)
    raise ValidationError(f'"{text.strip()}" is not a role here: use one of {choices}')


def _organisation_from(name: str) -> Organisation | None:
    if not name.strip():
        return None
    found = list(Organisation.objects.filter(name__iexact=name.strip(), closed_on__isnull=True))
    if len(found) == 1:
        return found[0]
    if found:
        raise ValidationError(
            f'More than one open organisation is called "{name.strip()}": invite this person '
            "on the Users page, where you can choose which"
        )
    raise ValidationError(
        f'No open organisation is called "{name.strip()}": add it on the Organisations page, '
        "or correct the name"
    )


def _rows(data: bytes) -> list[dict[str, str]]:
    """The file's rows, keyed by the five columns; ValidationError for a file that cannot
    be read at all."""
    if len(data) > CSV_MAX_BYTES:
        raise ValidationError("The file is larger than 1 MB: split it into smaller files")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            'The file is not a CSV in UTF-8: in Excel use "Save as", then "CSV UTF-8"'
        ) from exc
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip().lower().replace("_", " ") for cell in next(reader, [])]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise ValidationError(
            "The first row must name the columns: name, email, organisation, role and job "
            f"title. Missing: {', '.join(missing)}"
        )
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        cells += [""] * (len(header) - len(cells))
        rows.append({column: cells[header.index(column)] for column in CSV_COLUMNS})
    if not rows:
        raise ValidationError("The file has no one in it: add a row for each person")
    if len(rows) > CSV_MAX_ROWS:
        raise ValidationError(
            f"The file has {len(rows)} people: invite at most {CSV_MAX_ROWS} at a time"
        )
    return rows


def staff_invite_csv(*, actor: User, data: bytes) -> list[RowReport]:
    """Invite everyone in a CSV file (name, email, organisation, role, job title), each
    row on its own: a row that cannot be used changes nothing and is reported with why,
    in the administrator's words; the others are invited and emailed. ValidationError
    when the file itself cannot be read (nothing is invited then)."""
    if actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only an administrator can invite people")
    rows = _rows(data)
    report: list[RowReport] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        name, email = row["name"].strip(), row["email"].strip().lower()
        try:
            if email and email in seen:
                raise ValidationError(f"{email} is on an earlier row of this file")
            seen.add(email)
            if not email:
                raise ValidationError("Enter the person's email address")
            with transaction.atomic():
                invited = staff_invite(
                    actor=actor,
                    full_name=name,
                    email=email,
                    role=_role_from(row["role"]),
                    organisation=_organisation_from(row["organisation"]),
                    job_title=row["job title"],
                )
        except ValidationError as exc:
            report.append(RowReport(line, name, email, "refused", " ".join(exc.messages)))
        else:
            outcome = "reactivated" if invited.reactivated else "invited"
            report.append(RowReport(line, name, email, outcome))
    audit_record(
        actor=actor,
        action="users_invited_from_file",
        detail={
            "rows": len(report),
            "invited": sum(r.outcome != "refused" for r in report),
            "refused": sum(r.outcome == "refused" for r in report),
        },
    )
    return report
