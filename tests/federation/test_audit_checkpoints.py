"""Audit checkpoints (decision 0012): the head of a council's audit log, signed with its
federation key and kept in the public schema, so that deleting the newest events (which
leaves a chain that still links) is found by `verify_audit`."""

from __future__ import annotations

import io
import json

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import schema_context

from core.audit import audit_record
from core.models import AuditEvent
from federation import protocol
from federation.checkpoints import (
    CheckpointRefused,
    audit_check,
    audit_checkpoint_take,
    checkpoint_digest,
    checkpoint_published,
)
from federation.services import council_keys_rotate
from federation.tasks import audit_checkpoint_task
from tenants.models import AuditCheckpoint


def _events(world, count: int = 3) -> int:  # type: ignore[no-untyped-def]
    """Write `count` events at Brighton; the log's length afterwards."""
    with schema_context(world.brighton.schema_name):
        for number in range(count):
            audit_record(actor=None, action="person_viewed", person_id=number + 1)
        return AuditEvent.objects.count()


def _delete_newest(world, count: int) -> None:  # type: ignore[no-untyped-def]
    """What a database superuser can do: switch off the append-only trigger, delete the
    newest events, switch it back on."""
    with schema_context(world.brighton.schema_name), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE core_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "DELETE FROM core_auditevent WHERE id IN "
            "(SELECT id FROM core_auditevent ORDER BY id DESC LIMIT %s)",
            [count],
        )
        cursor.execute("ALTER TABLE core_auditevent ENABLE TRIGGER USER")


def _verify(code: str, *args: str) -> str:
    """`patchwork verify_audit CODE`'s output; CommandError when it fails."""
    out = io.StringIO()
    try:
        call_command("verify_audit", code, *args, stdout=out)
    except CommandError as error:
        raise CommandError(f"{error}\n{out.getvalue()}") from error
    return out.getvalue()


def test_it_signs_a_checkpoint_only_when_the_log_grew(world, db) -> None:
    """The first checkpoint records the whole log; the next waits for a new event and
    names the one before it."""
    length = _events(world)
    first = audit_checkpoint_take(council=world.brighton)
    assert first is not None and first.sequence == 1
    assert first.document["events"] == length and first.document["previous"] is None
    assert audit_checkpoint_take(council=world.brighton) is None
    _events(world, 1)
    second = audit_checkpoint_take(council=world.brighton)
    assert second is not None and second.sequence == 2
    assert second.document["events"] == length + 1
    assert second.document["previous"] == checkpoint_digest(first.document)
    assert audit_check(council=world.brighton).intact


def test_anyone_with_the_public_key_can_check_a_checkpoint(world, db) -> None:
    """The published checkpoint verifies with nothing but Ed25519, RFC 8785 and the key
    the council publishes."""
    _events(world)
    published = checkpoint_published(audit_checkpoint_take(council=world.brighton))
    body = {k: v for k, v in published["checkpoint"].items() if k != "signatures"}
    public = protocol.unb64(published["public_key"])
    Ed25519PublicKey.from_public_bytes(public).verify(
        protocol.unb64(published["signature"]), rfc8785.dumps(body)
    )
    with schema_context(world.brighton.schema_name):
        head = AuditEvent.objects.order_by("-id").first()
    assert body["head_hash"] == head.hash and body["council"] == "council:E06000043"


def _forge(checkpoint: AuditCheckpoint, how: str) -> None:
    document = dict(checkpoint.document)
    signature = document["signatures"]["council:E06000043"]
    if how == "altered":
        # Lowered to hide a truncation, the signature left as it was.
        document["events"] = document["events"] - 2
    elif how == "signed with another key under the council's key id":
        document["events"] = document["events"] - 2
        intruder = protocol.SigningKey(
            "council:E06000043", signature["key_id"], Ed25519PrivateKey.generate()
        )
        document = protocol.sign_document({**document, "signatures": {}}, intruder)
    else:
        document = protocol.sign_document(
            {**document, "signatures": {}},
            protocol.SigningKey("council:E06000043", "made-up-key", Ed25519PrivateKey.generate()),
        )
    checkpoint.document = document
    checkpoint.save(update_fields=["document"])


@pytest.mark.parametrize(
    "how",
    ["altered", "signed with another key under the council's key id", "unknown key id"],
)
def test_a_forged_checkpoint_is_refused(world, db, how) -> None:
    """A checkpoint whose signature is not the council's is reported, never trusted: here
    one lowered to cover the deleted events."""
    _events(world)
    checkpoint = audit_checkpoint_take(council=world.brighton)
    _delete_newest(world, 2)
    _forge(checkpoint, how)
    with pytest.raises(CommandError, match="broken") as failure:
        _verify(world.brighton.code)
    assert (
        "checkpoint 1 does not carry a valid signature of Brighton and Hove's key: "
        "it was forged or altered"
    ) in str(failure.value)
    with pytest.raises(CheckpointRefused, match="forged or altered"):
        audit_checkpoint_take(council=world.brighton)


def test_a_deleted_checkpoint_is_found(world, db) -> None:
    """Checkpoints are numbered and chained: removing one between others shows."""
    for _ in range(3):
        _events(world, 1)
        audit_checkpoint_take(council=world.brighton)
    AuditCheckpoint.objects.filter(council=world.brighton, sequence=2).delete()
    with pytest.raises(CommandError, match="broken") as failure:
        _verify(world.brighton.code)
    assert "checkpoint 2 is missing or not genuine" in str(failure.value)


def test_a_log_cut_back_and_written_again_is_found(world, db) -> None:
    """Deleting the newest event and writing another in its place keeps the count, not
    the hash the checkpoint recorded at that position."""
    length = _events(world)
    audit_checkpoint_take(council=world.brighton)
    _delete_newest(world, 1)
    assert _events(world, 1) == length
    with pytest.raises(CommandError, match="broken") as failure:
        _verify(world.brighton.code)
    assert "is not the event a checkpoint signed at" in str(failure.value)


def test_the_scheduled_checkpoint_refuses_to_bless_a_cut_log(world, db) -> None:
    """Beat's task checks the events since the latest checkpoint: after a truncation it
    signs nothing and fails, and so does the command."""
    _events(world)
    audit_checkpoint_take(council=world.brighton)
    _delete_newest(world, 1)
    _events(world, 2)
    with (
        schema_context(world.brighton.schema_name),
        pytest.raises(CheckpointRefused, match="is gone or changed: the log was cut back"),
    ):
        audit_checkpoint_task.delay().get()
    with pytest.raises(CommandError, match="No checkpoint for E06000043"):
        call_command("audit_checkpoint", world.brighton.code, stdout=io.StringIO())
    assert AuditCheckpoint.objects.filter(council=world.brighton).count() == 1


def test_a_checkpoint_signed_before_a_key_rotation_still_verifies(world, db) -> None:
    """Rotating the council's key leaves earlier checkpoints checkable."""
    _events(world)
    audit_checkpoint_take(council=world.brighton)
    council_keys_rotate(council=world.brighton)
    _events(world, 1)
    second = audit_checkpoint_take(council=world.brighton)
    assert second is not None
    first = AuditCheckpoint.objects.get(council=world.brighton, sequence=1)
    assert (
        first.document["signatures"]["council:E06000043"]["key_id"]
        != second.document["signatures"]["council:E06000043"]["key_id"]
    )
    assert "intact" in _verify(world.brighton.code)


def test_a_checkpoint_saved_outside_the_database_catches_deleted_checkpoints(
    world, db, tmp_path
) -> None:
    """A superuser who deletes the newest events *and* every checkpoint passes a check of
    the database alone; the copy an operator saved from the API does not let it pass."""
    length = _events(world)
    saved = tmp_path / "checkpoint.json"
    published = checkpoint_published(audit_checkpoint_take(council=world.brighton))
    saved.write_text(json.dumps(published))
    _delete_newest(world, 2)
    AuditCheckpoint.objects.filter(council=world.brighton).delete()
    assert "intact" in _verify_only(world.brighton.code)
    with pytest.raises(CommandError, match="broken") as failure:
        _verify_only(world.brighton.code, "--against", str(saved))
    report = str(failure.value)
    assert "checkpoint 1, held outside the database, is no longer in it" in report
    assert f"ends at event {length - 2}, but a checkpoint signed at" in report


def test_a_forged_copy_held_outside_is_refused(world, db, tmp_path) -> None:
    """A saved copy is trusted only with the council's signature on it."""
    _events(world)
    document = dict(audit_checkpoint_take(council=world.brighton).document)
    document["events"] += 5
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="broken") as failure:
        _verify_only(world.brighton.code, "--against", str(saved))
    assert "the copy held outside: checkpoint 1 does not carry a valid signature" in str(
        failure.value
    )


def _verify_only(code: str, *args: str) -> str:
    """verify_audit without signing a new checkpoint afterwards."""
    return _verify(code, "--no-checkpoint", *args)
