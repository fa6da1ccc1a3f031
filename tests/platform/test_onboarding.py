"""Onboarding, suspending and offboarding councils through the platform's services."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Invitation, User
from core.models import Organisation
from federation import sealing as keys
from federation.directory.services import council_current_key
from tenants import archives
from tenants.models import Council, Domain
from tenants.selectors import migration_state
from tenants.services import council_offboard, council_onboard, council_suspend


def test_it_onboards_a_working_council(world, db) -> None:
    """A new council gets a schema with every table, a domain, a sealed key and an invite."""
    started = time.perf_counter()
    done = council_onboard(
        name="Isle of Wight", code="E06000046", admin_email="Head.Admin@IOW.test"
    )
    elapsed = time.perf_counter() - started
    council = done.council
    assert elapsed < 5
    assert schema_exists("council_e06000046")
    assert council.get_primary_domain().domain == "isle-of-wight.localhost"
    assert migration_state(council.schema_name).pending == 0
    with schema_context(council.schema_name):
        admin = User.objects.get()
        assert admin.email == "head.admin@iow.test"
        assert admin.role == User.Role.COUNCIL_ADMIN
        assert not admin.has_usable_password()
        assert Invitation.objects.filter(user=admin, accepted_at=None).count() == 1
        assert Organisation.objects.count() == 0
    assert done.invitation_url.startswith("http://isle-of-wight.localhost:8000/invitation/")


def test_it_seals_the_private_key_under_the_key_encryption_key(world, db) -> None:
    """The private half is stored only sealed, bound to its key id, and signs correctly."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    key = council_current_key(world.brighton)
    sealed = bytes(key.sealed_private_key)
    private = keys.unseal(sealed, context=keys.private_key_context(key.key_id))
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(b"pointer")
    Ed25519PublicKey.from_public_bytes(bytes(key.public_key)).verify(signature, b"pointer")
    assert private not in sealed
    with pytest.raises(Exception):  # noqa: B017 - InvalidTag: another key id does not open it
        keys.unseal(sealed, context=keys.private_key_context("someone-else"))


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"code": "E0600004"}, "code", "ONS code"),
        ({"code": "X06000043"}, "code", "ONS code"),
        ({"code": "E06000043"}, "code", "already on this platform"),
        ({"name": "brighton and hove"}, "name", "already on this platform"),
        ({"name": "   "}, "name", "Enter the council's name"),
        ({"slug": "staffordshire"}, "slug", "already in use"),
        ({"slug": "-bad-"}, "slug", "letters, numbers and hyphens"),
        ({"admin_email": "not an email"}, "email", "Enter an email address"),
    ],
)
def test_it_refuses_bad_or_duplicate_councils_and_changes_nothing(
    world, db, fields, field, message
) -> None:
    """Invalid or duplicate names, codes and addresses get a clear error; nothing is left."""
    arguments = {"name": "Rutland", "code": "E06000017", "admin_email": "a@rutland.test"}
    arguments.update(fields)
    councils_before = Council.objects.count()
    domains_before = Domain.objects.count()
    with pytest.raises(ValidationError) as error:
        council_onboard(**arguments)
    assert message in " ".join(error.value.message_dict[field])
    assert Council.objects.count() == councils_before
    assert Domain.objects.count() == domains_before
    assert not schema_exists("council_e06000017")


def test_it_serves_the_suspended_page_and_refuses_sign_in(world, db) -> None:
    """A suspended council's host answers 503 with a clear page, and no one signs in."""
    council_suspend(council=world.brighton)
    client = Client(HTTP_HOST=world.brighton_admin.host)
    page = client.get("/sign-in/")
    assert page.status_code == 503
    assert b"is suspended" in page.content
    attempt = client.post(
        "/sign-in/",
        {"email": world.brighton_admin.email, "password": world.brighton_admin.password},
    )
    assert attempt.status_code == 503
    assert "_auth_user_id" not in client.session


def test_it_exports_then_drops_an_offboarded_council(world, db, tmp_path) -> None:
    """Offboarding writes an archive that opens and matches, then the schema is gone."""
    council = council_onboard(
        name="Rutland", code="E06000017", admin_email="a@rutland.test"
    ).council
    with schema_context(council.schema_name):
        Organisation.objects.create(name="Oakham Surgery", agency_type="gp")
    archive = council_offboard(council=council, confirm_code="e06000017", directory=tmp_path)
    manifest = archives.archive_manifest(archive)
    assert manifest["council"]["code"] == "E06000017"
    assert manifest["tables"]["core_organisation"]["rows"] == 1
    assert manifest["tables"]["accounts_user"]["rows"] == 1
    assert not schema_exists("council_e06000017")
    assert not Council.objects.filter(code="E06000017").exists()
    assert not Domain.objects.filter(domain="rutland.localhost").exists()


def test_it_refuses_to_offboard_without_the_matching_code(world, db, tmp_path) -> None:
    """A wrong confirmation code changes nothing and writes no archive."""
    with pytest.raises(ValidationError, match="confirm with its code E10000028"):
        council_offboard(council=world.staffordshire, confirm_code="E06000043", directory=tmp_path)
    assert schema_exists(world.staffordshire.schema_name)
    assert list(tmp_path.iterdir()) == []


def test_it_detects_a_tampered_archive(world, db, tmp_path) -> None:
    """One flipped byte in an archive makes it refuse to open."""
    from tenants.services import council_export

    archive = council_export(council=world.staffordshire, directory=tmp_path)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(archives.ArchiveError):
        archives.archive_manifest(archive)
    truncated = tmp_path / "truncated.pwa"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(archives.ArchiveError):
        archives.archive_manifest(truncated)


def test_it_keeps_the_template_schema_free_of_council_data(world, db) -> None:
    """New councils are cloned from the template, so it must never hold a council's rows."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM council_template.accounts_user")
        assert cursor.fetchone()[0] == 0
