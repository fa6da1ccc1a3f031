"""People who sign in. The table exists in every scope: in the public schema it holds the
platform's operators, in a council's schema that council's own users. A Brighton login
therefore never exists in Staffordshire, and no council user can reach the operator console."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.setdefault("is_superuser", True)
        fields.setdefault("role", User.Role.OPERATOR)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    class Role(models.TextChoices):
        PRACTITIONER = "practitioner", "Practitioner"
        MANAGER = "manager", "Manager"
        COUNCIL_ADMIN = "council_admin", "Council administrator"
        IG_OFFICER = "ig_officer", "Information governance officer"
        OPERATOR = "operator", "Platform operator"

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.PRACTITIONER)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["full_name", "email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    @property
    def is_council_admin(self) -> bool:
        return self.role == self.Role.COUNCIL_ADMIN

    @property
    def is_operator(self) -> bool:
        return self.role == self.Role.OPERATOR


class Invitation(models.Model):
    """A one-time link that lets a new user choose a password and set up their second
    factor. Only a hash of the token is stored; the link is shown once, to whoever sent it."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="invitations")
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    # Revoked by an administrator, or replaced by a newer invitation (resent): the link no
    # longer works, and the row stays so the administrator sees what happened.
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Invitation for {self.user.email}"

    @property
    def is_usable(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )

    @property
    def state(self) -> str:
        """What the administrator sees: accepted, revoked, expired or sent."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "sent"


class SecondFactorReset(models.Model):
    """An administrator's reset of someone's second factor (decision 0019): their
    authenticator and recovery codes are gone, and until `expires_at` they may set up a new
    authenticator after their password. Kept after use, as the record of who reset whom."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="factor_resets")
    reset_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reset_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    enrolled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-reset_at"]

    def __str__(self) -> str:
        return f"Second factor reset for {self.user.email}"

    @property
    def is_usable(self) -> bool:
        return self.enrolled_at is None and self.expires_at > timezone.now()
