"""Deleting the newest audit events, as a database superuser can, is found by
`patchwork verify_audit` once it has run before (and signed a checkpoint): on a hash chain
alone, what is left still links and passed."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import schema_context

from core.audit import audit_record
from core.models import AuditEvent


def _verify(code: str) -> str:
    """`patchwork verify_audit CODE`: its output, or CommandError carrying the output."""
    out = io.StringIO()
    try:
        call_command("verify_audit", code, stdout=out)
    except CommandError as error:
        raise CommandError(f"{error}\n{out.getvalue()}") from error
    return out.getvalue()


def test_verify_audit_finds_the_newest_events_deleted_after_it_ran(world, db) -> None:
    """A clean verify_audit, then the two newest events deleted with the append-only
    trigger switched off: the next verify_audit fails and says what is missing."""
    with schema_context(world.brighton.schema_name):
        for person_id in (1, 2, 3):
            audit_record(actor=None, action="person_viewed", person_id=person_id)
        length = AuditEvent.objects.count()
    assert f"{length} events, intact" in _verify(world.brighton.code)

    with schema_context(world.brighton.schema_name), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE core_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "DELETE FROM core_auditevent WHERE id IN "
            "(SELECT id FROM core_auditevent ORDER BY id DESC LIMIT 2)"
        )
        cursor.execute("ALTER TABLE core_auditevent ENABLE TRIGGER USER")

    with pytest.raises(CommandError, match="broken") as failure:
        _verify(world.brighton.code)
    report = str(failure.value)
    assert (
        f"the audit log of Brighton and Hove ends at event {length - 2}, "
        "but a checkpoint signed at "
    ) in report
    assert f"recorded {length} events" in report
