"""The audit chain: append-only, and tampering is detected."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django_tenants.utils import schema_context

from core.audit import audit_record, audit_verify
from core.models import AuditEvent


def _three_events(world):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return [
            audit_record(actor=None, action="search", detail={"result_ids": [1, 2]}),
            audit_record(actor=None, action="person_viewed", person_id=7),
            audit_record(actor=None, action="involvement_added", person_id=7),
        ]


def test_it_chains_each_event_to_the_one_before(world, db) -> None:
    """Each event holds the previous event's hash, and the chain verifies."""
    first, second, third = _three_events(world)
    assert second.previous_hash == first.hash
    assert third.previous_hash == second.hash
    with schema_context(world.brighton.schema_name):
        assert audit_verify().intact


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE core_auditevent SET action = 'nothing'",
        "DELETE FROM core_auditevent",
        "TRUNCATE core_auditevent",
    ],
)
def test_the_database_refuses_to_change_or_delete_events(world, db, statement) -> None:
    """UPDATE, DELETE and TRUNCATE are refused by a trigger, in every council's schema."""
    _three_events(world)
    with (
        schema_context(world.brighton.schema_name),
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)


@pytest.mark.parametrize("tamper", ["edit", "delete"])
def test_verify_audit_finds_tampering(world, db, tamper) -> None:
    """Someone with database rights who edits or deletes an event is caught."""
    _, second, _ = _three_events(world)
    with schema_context(world.brighton.schema_name):
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE core_auditevent DISABLE TRIGGER USER")
            if tamper == "edit":
                cursor.execute(
                    "UPDATE core_auditevent SET actor_email = 'someone-else@x' WHERE id = %s",
                    [second.id],
                )
            else:
                cursor.execute("DELETE FROM core_auditevent WHERE id = %s", [second.id])
            cursor.execute("ALTER TABLE core_auditevent ENABLE TRIGGER USER")
        report = audit_verify()
    assert not report.intact
    with pytest.raises(CommandError, match="broken"):
        call_command("verify_audit", world.brighton.code)


def test_verify_audit_passes_an_intact_chain(world, db, capsys) -> None:
    """The command reports each council's event count when nothing was touched."""
    _three_events(world)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "E06000043 Brighton and Hove" in out and "intact" in out
    with schema_context(world.staffordshire.schema_name):
        assert AuditEvent.objects.count() == 0 or audit_verify().intact


@pytest.mark.parametrize("count", [1, 2, 21])
def test_events_appended_together_chain_in_order(world, db, count) -> None:
    """`audit_record_many` (prepared for a page's few events, bound on the client for a
    larger batch): the events follow the chain in the order given, and it verifies."""
    from core.audit import PREPARED_EVENTS_MAX, audit_record_many

    assert (count > PREPARED_EVENTS_MAX) == (count == 21)
    with schema_context(world.brighton.schema_name):
        before = audit_record(actor=None, action="search", detail={"result_ids": []})
        events = [("person_viewed", n, {"n": n}) for n in range(count)]
        ids = audit_record_many(actor=None, events=events)
        written = list(AuditEvent.objects.filter(pk__in=ids).order_by("pk"))
        assert [e.person_id for e in written] == list(range(count))
        assert [e.detail for e in written] == [{"n": n} for n in range(count)]
        assert written[0].previous_hash == before.hash
        assert all(b.previous_hash == a.hash for a, b in zip(written, written[1:], strict=False))
        assert audit_verify().intact
