"""Writes for the platform: onboard, suspend, resume and offboard councils; keep the
template schema current."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from django_tenants.utils import get_tenant_base_schema, schema_context, schema_exists

from accounts.models import User
from accounts.services import user_invite
from tenants import archives
from tenants.cloning import schema_clone
from tenants.models import GSS_CODE, Council, Domain
from tenants.selectors import council_host, council_url, migration_state, template_is_current
from tenants.signals import council_schema_created

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Onboarded:
    council: Council
    admin_email: str
    invitation_url: str


def template_refresh() -> None:
    """Bring the template schema, from which every new council is cloned, up to date.
    Run on every deploy (by `patchwork migrate`) so a new council starts current."""
    base = get_tenant_base_schema()
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{base}"')
    call_command("migrate_schemas", schema_name=base, interactive=False, verbosity=0)


def council_fields_clean(*, name: str, code: str, slug: str) -> tuple[str, str, str]:
    """Normalise a new council's name, ONS code and web address name, or raise
    ValidationError naming each field that is invalid or already taken."""
    name = " ".join(name.split())
    code = code.strip().upper()
    slug = slug.strip().lower()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Enter the council's name"
    elif len(name) > 120:
        errors["name"] = "The council's name must be 120 characters or fewer"
    elif Council.objects.filter(name__iexact=name).exists():
        errors["name"] = f"A council called {name} is already on this platform"
    if not GSS_CODE.match(code):
        errors["code"] = (
            "Enter the council's ONS code: a letter E, W, S or N and eight digits, like E06000043"
        )
    elif Council.objects.filter(code=code).exists():
        errors["code"] = f"A council with the code {code} is already on this platform"
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", slug):
        errors["slug"] = (
            "The web address name can use only letters, numbers and hyphens, "
            "and cannot start or end with a hyphen"
        )
    else:
        host = f"{slug}.{settings.PLATFORM_DOMAIN}"
        if (
            Council.objects.filter(slug=slug).exists()
            or Domain.objects.filter(domain=host).exists()
        ):
            errors["slug"] = f"The web address {host} is already in use"
    if errors:
        raise ValidationError(errors)
    return name, code, slug


def council_onboard(
    *,
    name: str,
    code: str,
    admin_email: str,
    admin_name: str = "",
    slug: str = "",
) -> Onboarded:
    """Create a council: its schema (cloned from the template), its domain and its first
    administrator, who gets a one-time invitation link. (Apps that follow councils' saves add
    their own records in the same transaction; apps that fill the council's own tables
    listen to `tenants.signals.council_schema_created`.)

    Everything happens in one transaction (PostgreSQL DDL is transactional): bad input
    raises ValidationError and leaves nothing behind."""
    name, code, slug = council_fields_clean(name=name, code=code, slug=slug or slugify(name))
    if not template_is_current():
        template_refresh()
    with transaction.atomic():
        council = Council(name=name, code=code, slug=slug, schema_name=f"council_{code.lower()}")
        council.full_clean()
        council.save()
        schema_clone(get_tenant_base_schema(), council.schema_name)
        Domain.objects.create(
            domain=f"{slug}.{settings.PLATFORM_DOMAIN}", tenant=council, is_primary=True
        )
        with schema_context(council.schema_name):
            admin, token = user_invite(
                email=admin_email,
                full_name=admin_name or admin_email.split("@")[0],
                role=User.Role.COUNCIL_ADMIN,
            )
            council_schema_created.send(sender=Council, council=council)
    log.info("Onboarded %s as %s", council, council.schema_name)
    return Onboarded(
        council=council,
        admin_email=admin.email,
        invitation_url=council_url(council, f"/invitation/{token}/"),
    )


@transaction.atomic
def council_suspend(*, council: Council) -> Council:
    """Stop a council's host from serving anything but the "suspended" page; its users
    cannot sign in and their open sessions stop working at once. Nothing is deleted."""
    council.status = Council.Status.SUSPENDED
    council.suspended_at = timezone.now()
    council.save(update_fields=["status", "suspended_at"])
    return council


@transaction.atomic
def council_resume(*, council: Council) -> Council:
    council.status = Council.Status.ACTIVE
    council.suspended_at = None
    council.save(update_fields=["status", "suspended_at"])
    return council


def council_export(*, council: Council, directory: Path | None = None) -> Path:
    """Write a sealed, checksummed archive of all the council's data; return its path."""
    stamp: datetime = timezone.now()
    target = (directory or settings.EXPORT_DIR) / f"{council.code}-{stamp:%Y%m%dT%H%M%S}.pwa"
    manifest = {
        "council": {"name": council.name, "code": council.code, "slug": council.slug},
        "host": council_host(council),
        "exported_at": stamp.isoformat(),
        "pending_migrations": migration_state(council.schema_name).pending,
    }
    return archives.schema_export(council.schema_name, manifest, target)


def council_offboard(*, council: Council, confirm_code: str, directory: Path | None = None) -> Path:
    """Export the council's data, check the archive opens and matches, then drop its schema
    and platform records. Returns the archive's path; nothing is dropped if the export fails."""
    if confirm_code.strip().upper() != council.code:
        raise ValidationError(f"To offboard {council.name}, confirm with its code {council.code}")
    archive = council_export(council=council, directory=directory)
    archives.archive_manifest(archive)
    with transaction.atomic():
        schema = council.schema_name
        council.delete()
        if schema_exists(schema):
            with connection.cursor() as cursor:
                # Deferred foreign-key checks pending in this transaction would block the drop.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
    log.info("Offboarded %s; archive at %s", council, archive)
    return archive
