"""Backups that restore: a whole deployment dropped and brought back row for row, one council
exported and imported, and damaged archives refused without changing anything."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import get_tenant_base_schema, schema_context, schema_exists

from accounts.models import User
from accounts.services import invitation_reissue
from core.audit import audit_verify
from core.models import AuditEvent, Organisation
from tenants import archives
from tenants.backups import RestoreRefused, council_import, deployment_backup
from tenants.models import Council, Domain
from tenants.services import council_export, council_onboard
from tests.operations.council_data import council_drop, council_fill, fingerprints
from tests.personas import Persona, sign_in

SPARE_COUNCILS = [
    ("Ops Testshire", "E10000098", "admin@testshire.test"),
    ("Ops Borough", "E06000098", "admin@opsborough.test"),
]


def _damage(archive: Path, how: str, settings) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(archive.read_bytes())
    if how == "a flipped byte":
        data[len(data) // 2] ^= 0x01
        archive.write_bytes(bytes(data))
    elif how == "cut short":
        archive.write_bytes(bytes(data[: len(data) - 100]))
    elif how == "another key":
        settings.KEY_ENCRYPTION_KEY = base64.b64decode(base64.b64encode(b"k" * 32))
    elif how == "not an archive":
        archive.write_bytes(b"name,date of birth\nAlex,2015-01-01\n")


DAMAGE = [
    ("a flipped byte", "damaged"),
    ("cut short", "truncated"),
    ("another key", "sealed under another key-encryption key"),
    ("not an archive", "not a Patchwork archive"),
]


def test_it_restores_a_dropped_deployment_row_for_row(world, django_db_blocker, tmp_path) -> None:
    """Back up two councils and the platform, drop the councils, restore: every table of
    every schema holds the same rows, and the councils work again."""
    with django_db_blocker.unblock():
        councils = [
            council_onboard(name=name, code=code, admin_email=email).council
            for name, code, email in SPARE_COUNCILS
        ]
        try:
            for council in councils:
                council_fill(council)
            schemas = [
                "public",
                get_tenant_base_schema(),
                world.brighton.schema_name,
                world.staffordshire.schema_name,
                *(council.schema_name for council in councils),
            ]
            before = {schema: fingerprints(schema) for schema in schemas}

            call_command("backup", output=tmp_path)
            (archive,) = tmp_path.glob("patchwork-*.pwa")
            for council in councils:
                council_drop(council)
            assert not any(schema_exists(c.schema_name) for c in councils)
            assert not Council.objects.filter(code__in=[c.code for c in councils]).exists()

            started = time.perf_counter()
            call_command("restore", str(archive), confirm=True)
            elapsed = time.perf_counter() - started

            after = {schema: fingerprints(schema) for schema in schemas}
            for schema in schemas:
                assert after[schema].keys() == before[schema].keys(), schema
                for table, fingerprint in before[schema].items():
                    assert after[schema][table] == fingerprint, f"{schema}.{table}"
            assert before[councils[0].schema_name]["core_auditevent"][0] == 20
            assert elapsed < 60

            restored = Council.objects.get(code=councils[0].code)
            assert restored.get_primary_domain().domain == "ops-testshire.localhost"
            with schema_context(restored.schema_name):
                assert audit_verify().intact
                largest = Organisation.objects.order_by("-id").values_list("id", flat=True)[0]
                # Sequences continue after the restored rows: a new record gets a new id.
                assert Organisation.objects.create(name="After the restore").id > largest
            assert sign_in(world.brighton_social_worker).get("/").status_code == 200
        finally:
            for council in Council.objects.filter(code__in=[c for _, c, _ in SPARE_COUNCILS]):
                council_drop(council)
            for council in councils:
                if schema_exists(council.schema_name):
                    council_drop(council)


def test_it_brings_an_exported_council_back_as_a_new_council(world, db, tmp_path) -> None:
    """export_council then import_council under a new code: the same rows in every table
    but the credentials (which a copy never accepts: tests/operations/
    test_import_copy_credentials.py), and Brighton's social worker signs in at the new
    address once invited again."""
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Hove Park School\twith a tab", agency_type="school")
    call_command("export_council", "e06000043", output=tmp_path)
    (archive,) = tmp_path.glob("E06000043-*.pwa")
    call_command(
        "import_council",
        str(archive),
        code="E06000099",
        name="Brighton Again",
        slug="brighton-again",
    )

    imported = Council.objects.get(code="E06000099")
    assert imported.schema_name == "council_e06000099"
    credentials = {"django_session", "accounts_invitation", "otp_totp_totpdevice"}
    credentials |= {"accounts_user", "core_sourcesystem"}  # passwords, import tokens

    def kept(schema_name: str) -> dict[str, tuple[int, str]]:
        return {t: f for t, f in fingerprints(schema_name).items() if t not in credentials}

    assert kept(imported.schema_name) == kept(world.brighton.schema_name)
    assert imported.signing_keys.count() == 1
    worker = world.brighton_social_worker
    with schema_context(imported.schema_name):
        user = User.objects.get(email=worker.email)
        token = invitation_reissue(user=user)
        assert TOTPDevice.objects.filter(user=user).count() == 0
    invited = Client(HTTP_HOST="brighton-again.localhost")
    invited.get(f"/invitation/{token}/")
    with schema_context(imported.schema_name):
        device = TOTPDevice.objects.get(user=user)
    moved = Persona(
        email=worker.email,
        schema_name=imported.schema_name,
        host="brighton-again.localhost",
        device_key=device.key,
    )
    # The previous step's code (within the device's tolerance): the current one is then
    # still unused for signing in.
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() - device.step
    accepted = invited.post(
        f"/invitation/{token}/",
        {
            "password": moved.password,
            "password_again": moved.password,
            "code": f"{totp.token():06d}",
        },
    )
    assert accepted.status_code == 200
    assert sign_in(moved).get("/").status_code == 200


def test_it_refuses_to_import_a_council_whose_name_code_or_address_is_taken(
    world, db, tmp_path
) -> None:
    """Importing Staffordshire while Staffordshire is still here names what is taken."""
    archive = council_export(council=world.staffordshire, directory=tmp_path)
    councils = Council.objects.count()
    with pytest.raises(CommandError, match="already on this platform"):
        call_command("import_council", str(archive))
    with pytest.raises(CommandError, match="already in use"):
        call_command(
            "import_council",
            str(archive),
            code="E06000097",
            name="Staffs Two",
            slug="staffordshire",
        )
    assert Council.objects.count() == councils
    assert not schema_exists("council_e06000097")


@pytest.mark.parametrize(("how", "message"), DAMAGE)
def test_it_refuses_a_damaged_council_archive_and_imports_nothing(
    world, db, tmp_path, settings, how, message
) -> None:
    """A flipped byte, a cut, another key or a stranger's file: a clear refusal, no council."""
    archive = council_export(council=world.staffordshire, directory=tmp_path)
    _damage(archive, how, settings)
    with pytest.raises(CommandError, match=message):
        call_command("import_council", str(archive), code="E06000096", name="Nowhere")
    assert not Council.objects.filter(code="E06000096").exists()
    assert not Domain.objects.filter(domain="nowhere.localhost").exists()
    assert not schema_exists("council_e06000096")


@pytest.mark.parametrize(("how", "message"), DAMAGE)
def test_it_refuses_a_damaged_backup_and_changes_nothing(
    world, db, tmp_path, settings, how, message
) -> None:
    """A damaged, cut or wrong-key backup is refused before a single table is touched."""
    backup = deployment_backup(directory=tmp_path)
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Made after the backup", agency_type="police")
    before = {s: fingerprints(s) for s in ("public", world.brighton.schema_name)}
    _damage(backup.path, how, settings)
    with pytest.raises(CommandError, match=message):
        call_command("restore", str(backup.path), confirm=True)
    assert {s: fingerprints(s) for s in before} == before


def test_it_only_checks_the_archive_without_confirm(world, db, tmp_path, capsys) -> None:
    """Without --confirm, restore says what the archive holds and changes nothing."""
    backup = deployment_backup(directory=tmp_path)
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Made after the backup", agency_type="police")
    before = fingerprints(world.brighton.schema_name)
    with pytest.raises(CommandError, match="Nothing was changed. Add --confirm"):
        call_command("restore", str(backup.path))
    checked = capsys.readouterr().out
    assert "is sound: a deployment archive" in checked
    assert "E06000043" in checked and "E10000028" in checked
    assert fingerprints(world.brighton.schema_name) == before


def test_it_tells_a_council_archive_from_a_deployment_backup(world, db, tmp_path) -> None:
    """Each command refuses the other kind of archive and says which command to use."""
    council_archive = council_export(council=world.staffordshire, directory=tmp_path)
    backup = deployment_backup(directory=tmp_path)
    with pytest.raises(CommandError, match="use `patchwork import_council`|with `patchwork import"):
        call_command("restore", str(council_archive), confirm=True)
    with pytest.raises(CommandError, match="with `patchwork restore`"):
        call_command("import_council", str(backup.path), code="E06000095", name="X")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "INSERT INTO {s}.django_migrations (app, name, applied) "
            "VALUES ('core', '9999_from_the_future', now())",
            "newer release",
        ),
        (
            "DELETE FROM {s}.django_migrations WHERE app = 'core' AND name = '0001_initial'",
            "older release",
        ),
    ],
)
def test_it_refuses_a_council_archive_from_another_release(
    world, db, tmp_path, change, message
) -> None:
    """Rows only load into tables shaped as they were: another release's archive is refused."""
    schema = world.staffordshire.schema_name
    with connection.cursor() as cursor:
        cursor.execute(change.format(s=schema))
    archive = council_export(council=world.staffordshire, directory=tmp_path)
    with pytest.raises(RestoreRefused, match=message):
        council_import(path=archive, code="E06000094", name="Elsewhere")
    assert not schema_exists("council_e06000094")


def test_it_streams_a_large_council_to_disk_without_holding_it_in_memory(
    world, db, tmp_path
) -> None:
    """About 36 MB of rows export with a few MB of memory, and check out whole."""
    with schema_context(world.staffordshire.schema_name), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO core_organisation "
            "(name, agency_type, sensitive_service, phone, secure_email, created_at) "
            "SELECT 'Organisation ' || n || ' ' || md5(n::text) || repeat('x', 140), "
            "'school', false, '', '', now() "
            "FROM generate_series(1, 150000) n"
        )
    tracemalloc.start()
    started = time.perf_counter()
    archive = council_export(council=world.staffordshire, directory=tmp_path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    manifest = archives.archive_manifest(archive)
    table_bytes = manifest["tables"]["core_organisation"]["bytes"]
    assert manifest["tables"]["core_organisation"]["rows"] == 150000
    assert table_bytes > 30_000_000
    assert peak < 12_000_000, f"peak {peak / 1e6:.1f} MB"
    print(  # noqa: T201 - a figure for the report
        f"exported a {table_bytes / 1e6:.0f} MB table in {elapsed:.1f}s, peak Python memory "
        f"{peak / 1e6:.1f} MB, archive {archive.stat().st_size / 1e6:.1f} MB"
    )


def test_it_keeps_the_audit_chain_intact_through_export_and_import(world, db, tmp_path) -> None:
    """An imported council's audit log verifies: the same events, the same hashes."""
    council = council_onboard(
        name="Chain Test", code="E06000093", admin_email="a@chain.test"
    ).council
    council_fill(council, people=5)
    archive = council_export(council=council, directory=tmp_path)
    imported = council_import(path=archive, code="E06000092", name="Chain Copy").council
    with schema_context(imported.schema_name):
        report = audit_verify()
        assert report.intact
        assert report.events == AuditEvent.objects.count() == 5


def test_it_restores_a_backup_into_an_empty_database(world, db, tmp_path) -> None:
    """`patchwork restore` on a new, empty database makes the platform tables and the
    template from the migrations, then loads every row: each table matches."""
    with schema_context(world.brighton.schema_name):
        Organisation.objects.create(name="Only in the backup", agency_type="housing")
    schemas = [
        "public",
        get_tenant_base_schema(),
        world.brighton.schema_name,
        world.staffordshire.schema_name,
    ]
    before = {schema: fingerprints(schema) for schema in schemas}
    backup = deployment_backup(directory=tmp_path)

    source = connection.settings_dict
    empty = f"{source['NAME']}_empty_{os.getpid()}"
    server = psycopg.connect(
        host=source["HOST"],
        port=source["PORT"] or 5432,
        user=source["USER"],
        password=source["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    )
    server.execute(f'DROP DATABASE IF EXISTS "{empty}"')
    server.execute(f'CREATE DATABASE "{empty}"')
    try:
        url = (
            f"postgres://{source['USER']}:{source['PASSWORD'] or ''}@{source['HOST']}:"
            f"{source['PORT'] or 5432}/{empty}"
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"TEST_DATABASE_NAME", "REDIS_URL"}
        }
        done = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "restore", str(backup.path), "--confirm"],
            env={
                **env,
                "DATABASE_URL": url,
                "PATCHWORK_ENV": "test",
                "PATCHWORK_DATA_DIR": str(tmp_path / "data"),
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Restored 4 schemas" in done.stdout
        with psycopg.connect(url.replace("postgres://", "postgresql://")) as restored:
            after = {schema: fingerprints(schema, restored.cursor()) for schema in schemas}
        assert after == before
    finally:
        server.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')
        server.close()


def test_it_names_councils_made_after_the_backup_and_leaves_their_schemas(
    world, db, tmp_path, capsys
) -> None:
    """A council onboarded after the backup keeps its schema and is named in the output;
    the backup file itself is readable by its owner alone."""
    call_command("backup", output=tmp_path)
    (archive,) = tmp_path.glob("patchwork-*.pwa")
    assert archive.stat().st_mode & 0o777 == 0o600
    later = council_onboard(name="Later", code="E06000091", admin_email="a@later.test").council
    call_command("restore", str(archive), confirm=True)
    assert f"left alone: {later.schema_name}" in capsys.readouterr().out
    assert schema_exists(later.schema_name)
    assert not Council.objects.filter(code="E06000091").exists()
    assert Council.objects.filter(code="E06000043").exists()
