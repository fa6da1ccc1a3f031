"""Second factors after enrolment (decision 0019): recovery codes (django-otp static
tokens: shown once, each usable once), an administrator's reset of someone's
authenticator, and setting up a new one at the next sign-in. Every step is audited through
accounts.auditing, in the council's log or, for operators, the platform's."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.auditing import account_audit, account_email
from accounts.models import SecondFactorReset, User

RECOVERY_DEVICE = "Recovery codes"


def recovery_code_normalise(code: str) -> str:
    """What a person types (any case, spaces or dashes between groups) as it is stored."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def recovery_code_shown(code: str) -> str:
    """A code in two groups of four, easier to copy by hand."""
    return f"{code[:4]} {code[4:]}"


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__name=RECOVERY_DEVICE).count()


@transaction.atomic
def recovery_codes_issue(*, user: User, actor: User | None = None) -> list[str]:
    """A new set of RECOVERY_CODES codes for `user`, replacing any earlier set; returned once
    (for the page that shows them) and never readable again."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_DEVICE, defaults={"confirmed": True}
    )
    replaced = device.token_set.count()
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(settings.RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    account_audit(
        actor=actor or user,
        action="recovery_codes_issued",
        user=user,
        detail={"codes": len(codes), "replaced": replaced},
    )
    return [recovery_code_shown(code) for code in codes]


@transaction.atomic
def recovery_code_use(*, user: User, code: str) -> StaticDevice | None:
    """Spend one of `user`'s recovery codes: the device to sign in with, or None when the
    code is not one of theirs (or was used before). One DELETE decides, so two requests
    with the same code cannot both succeed."""
    device = StaticDevice.objects.filter(user=user, name=RECOVERY_DEVICE).first()
    token = recovery_code_normalise(code)
    if device is None or not token:
        return None
    deleted, _ = StaticToken.objects.filter(device=device, token=token).delete()
    if not deleted:
        return None
    account_audit(
        actor=user,
        action="recovery_code_used",
        user=user,
        detail={"codes_left": device.token_set.count()},
    )
    return device


def factor_reset_pending(user: User) -> SecondFactorReset | None:
    """The reset that lets `user` set up a new authenticator now, or None."""
    reset = SecondFactorReset.objects.filter(user=user, enrolled_at__isnull=True).first()
    return reset if reset is not None and reset.is_usable else None


@transaction.atomic
def second_factor_reset(*, actor: User, user: User, sign_in_url: str) -> SecondFactorReset:
    """Remove `user`'s authenticator and recovery codes: they set up a new authenticator
    at their next sign-in, after their password. Sessions verified with the old device stop
    being verified at once (django-otp finds no device). Audited; `user` is emailed."""
    if actor.pk == user.pk:
        raise ValidationError("You cannot reset your own second factor: ask another administrator")
    if not user.has_usable_password():
        raise ValidationError(
            f"{user.full_name} has not set up their account yet: send a new invitation instead"
        )
    if not user.is_active:
        raise ValidationError(f"{user.full_name}'s account is switched off")
    removed = TOTPDevice.objects.filter(user=user).delete()[0]
    StaticDevice.objects.filter(user=user).delete()
    SecondFactorReset.objects.filter(user=user, enrolled_at__isnull=True).delete()
    now = timezone.now()
    reset = SecondFactorReset.objects.create(
        user=user,
        reset_by=actor,
        reset_at=now,
        expires_at=now + timedelta(days=settings.FACTOR_RESET_VALID_DAYS),
    )
    account_audit(
        actor=actor,
        action="second_factor_reset",
        user=user,
        detail={"authenticators_removed": removed},
    )
    account_email(
        key=f"second-factor-reset:{reset.pk}",
        to_email=user.email,
        subject="Your Patchwork authenticator app was reset",
        body=(
            f"Dear {user.full_name},\n\n"
            f"{actor.full_name} reset the authenticator app for your Patchwork account. "
            "Your old authenticator app and recovery codes no longer work.\n\n"
            f"The next time you sign in at {sign_in_url}, after your password you will set "
            "up your authenticator app again. This works for "
            f"{settings.FACTOR_RESET_VALID_DAYS} days.\n\n"
            "If you did not ask for this, tell your administrator straight away.\n"
        ),
    )
    return reset


def enrolment_device(user: User) -> TOTPDevice:
    """The authenticator `user` is setting up after a reset: made once, confirmed on use."""
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="Authenticator app", confirmed=False
    )
    return device


@transaction.atomic
def second_factor_enrol(*, user: User, code: str) -> TOTPDevice:
    """Confirm the new authenticator with a code it shows: the reset is then used up."""
    reset = (
        SecondFactorReset.objects.select_for_update()
        .filter(user=user, enrolled_at__isnull=True)
        .first()
    )
    if reset is None or not reset.is_usable:
        raise ValidationError(
            "Setting up a new authenticator app is no longer allowed: ask your administrator"
        )
    device = enrolment_device(user)
    if not device.verify_token(code.strip().replace(" ", "")):
        raise ValidationError(
            {"code": "The code is not right: enter the 6 digits your authenticator app shows now"}
        )
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    reset.enrolled_at = timezone.now()
    reset.save(update_fields=["enrolled_at"])
    account_audit(actor=user, action="second_factor_enrolled", user=user)
    return device
