"""Witnessed audit (decision 0015), over real HTTP between councils served by gunicorn on
loopback. On one deployment: a council's checkpoint is countersigned by two partner
councils, each keeping what it signed in its own schema; `verify_audit --witnessed` then
finds a log truncated or rewritten by a database superuser who also deleted the public
schema's checkpoints and the council's copies of the statements; a witness refuses a
rolled-back, forked or forged checkpoint and keeps an alert. Across two deployments: a
witness on the other one stands even against whoever holds the whole of the first one's
database (and its key)."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from patchwork_demo.federation import Deployment, deployments, in_parallel

from core.audit import GENESIS, audit_record, event_hash
from core.models import AuditEvent
from federation import protocol
from federation.checkpoints import (
    audit_checkpoint_latest,
    audit_checkpoint_take,
    checkpoint_digest,
)
from federation.client import signed_request
from federation.directory.models import FederationPeer, council_federation_id
from federation.models import WitnessAlert, WitnessedCheckpoint
from federation.selectors import peer_active, peer_base_url
from federation.services import signing_key
from federation.tasks import audit_witness_task
from federation.witnessing import (
    MAX_INTERMEDIATE,
    QUERY_TYPE,
    REQUEST_TYPE,
    STATEMENT_PATH,
    WITNESS_PATH,
    WitnessResult,
    _send_one,
    audit_witness_send,
    audit_witnesses_choose,
)
from tenants.models import AuditCheckpoint, AuditWitnessStatement, Council
from tenants.services import council_onboard
from tenants.tasks import for_each_council
from tests.federation.agreement import make_agreement
from tests.federation.live import (
    committed_restore,
    committed_snapshot,
    free_port,
    live_env,
    server_start,
    server_stop,
)


@dataclass
class Councils:
    kent: Council
    surrey: Council
    port: int
    log: Path


def _onboard(name: str, code: str) -> Council:
    existing = Council.objects.filter(code=code).first()
    if existing is not None:
        return existing
    return council_onboard(name=name, code=code, admin_email=f"admin@{code.lower()}.test").council


@pytest.fixture(scope="module")
def councils(world, django_db_blocker, tmp_path_factory) -> Iterator[Councils]:  # type: ignore[no-untyped-def]
    """Kent and Surrey, the witnesses, and a gunicorn serving every council on loopback."""
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        kent = _onboard("Kent", "E10000016")
        surrey = _onboard("Surrey", "E10000030")
    port = free_port()
    log = tmp_path_factory.mktemp("witness") / "server.log"
    server = server_start(live_env(port), port, workers=1, log=log)
    try:
        yield Councils(kent, surrey, port, log)
    finally:
        server_stop(server)
        with django_db_blocker.unblock():
            committed_restore(snapshot)


@pytest.fixture
def live(councils, settings, django_db_blocker) -> Iterator[Councils]:  # type: ignore[no-untyped-def]
    """This process reaches the councils at the live server's port and commits what it
    writes (the server is another process)."""
    settings.SITE_PORT = str(councils.port)
    settings.AUDIT_WITNESSES = 2
    with django_db_blocker.unblock():
        yield councils


def _subject(live: Councils, name: str, code: str, events: int = 6) -> Council:
    """A council whose partners (agreements in force) are Kent and Surrey, with some audit
    events and a signed checkpoint, witnessed by both."""
    council = _onboard(name, code)
    make_agreement(council, live.kent)
    make_agreement(council, live.surrey)
    with schema_context(council.schema_name):
        for person_id in range(1, events + 1):
            audit_record(actor=None, action="person_viewed", person_id=person_id)
    _witness(council)
    return council


def _witness(council: Council) -> list[WitnessResult]:
    audit_checkpoint_take(council=council)
    with schema_context(council.schema_name):
        return audit_witness_send(council=council)


def _verify(code: str, *extra: str) -> str:
    """`patchwork verify_audit CODE --witnessed --no-checkpoint`: its output, or a
    CommandError carrying the output."""
    out = io.StringIO()
    try:
        call_command("verify_audit", code, "--witnessed", "--no-checkpoint", *extra, stdout=out)
    except CommandError as error:
        raise CommandError(f"{error}\n{out.getvalue()}") from error
    return out.getvalue()


def _as_superuser(council: Council, *statements: str) -> None:
    """What someone with the whole database can do: the append-only trigger off, the
    statements, the trigger on again."""
    with schema_context(council.schema_name), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE core_auditevent DISABLE TRIGGER USER")
        for statement in statements:
            cursor.execute(statement)
        cursor.execute("ALTER TABLE core_auditevent ENABLE TRIGGER USER")


def _erase_checkpoints_and_statements(council: Council) -> None:
    AuditCheckpoint.objects.filter(council=council).delete()
    AuditWitnessStatement.objects.filter(council=council).delete()


def _witnessed_by(witness: Council, council: Council) -> list[WitnessedCheckpoint]:
    with schema_context(witness.schema_name):
        return list(
            WitnessedCheckpoint.objects.filter(peer_id=council_federation_id(council)).order_by(
                "sequence"
            )
        )


def _alerts(witness: Council, council: Council) -> list[WitnessAlert]:
    with schema_context(witness.schema_name):
        return list(WitnessAlert.objects.filter(peer_id=council_federation_id(council)))


# --- Across two deployments -----------------------------------------------------------------

KENT, MEDWAY, DEVON = "E10000016", "E06000035", "E10000008"


def _call_line(*args: str) -> str:
    return f"call_command(*{list(args)!r})"


def _script_of(*lines: str) -> str:
    return "\n".join(["from django.core.management import call_command", *lines])


def _verify_on(deployment: Deployment) -> str:
    """`verify_audit KENT --witnessed --no-checkpoint` on the deployment: a line PASSED or
    FAILED, then what it printed."""
    return deployment.shell(
        "import io\n"
        "from django.core.management import call_command\n"
        "from django.core.management.base import CommandError\n"
        "out = io.StringIO()\n"
        "try:\n"
        f"    call_command('verify_audit', '{KENT}', '--witnessed', '--no-checkpoint', "
        "stdout=out)\n"
        "    print('PASSED')\n"
        "except CommandError as error:\n"
        "    print('FAILED', error)\n"
        "print(out.getvalue())\n"
    )


CUT_AND_COVER = f"""
from django.db import connection, connections
from django_tenants.utils import schema_context
from patchwork_demo.federation import Deployment, deployments, in_parallel
from federation.models import WitnessAlert, WitnessedCheckpoint
from tenants.models import AuditCheckpoint, AuditWitnessStatement, Council
kent = Council.objects.get(code='{KENT}')
with schema_context(kent.schema_name), connection.cursor() as cursor:
    cursor.execute('ALTER TABLE core_auditevent DISABLE TRIGGER USER')
    cursor.execute('DELETE FROM core_auditevent WHERE id IN '
                   '(SELECT id FROM core_auditevent ORDER BY id DESC LIMIT 4)')
    cursor.execute('ALTER TABLE core_auditevent ENABLE TRIGGER USER')
AuditCheckpoint.objects.filter(council=kent).delete()
AuditWitnessStatement.objects.filter(council=kent).delete()
with schema_context(Council.objects.get(code='{MEDWAY}').schema_name):
    WitnessedCheckpoint.objects.all().delete()
    WitnessAlert.objects.all().delete()
"""


def test_a_witness_on_another_deployment_finds_a_log_cut_by_the_whole_databases_superuser(
    django_db_setup,
) -> None:  # type: ignore[no-untyped-def]
    """First in this file: the deployments are copies of the test database, which cannot be
    copied while this file's server (below) is connected to it."""
    template = connections["default"].settings_dict["NAME"]
    connections.close_all()
    env = {**os.environ, "PATCHWORK_ENV": "test"}
    env.pop("TEST_DATABASE_NAME", None)
    with (
        deployments(settings.DATABASE_URL, template=template, base_env=env) as (a, b),
        tempfile.TemporaryDirectory() as folder,
    ):
        card_a, card_b = Path(folder, "kent.json"), Path(folder, "devon.json")
        in_parallel(
            a,
            _script_of(
                _call_line(
                    "onboard_council",
                    "--name",
                    "Kent",
                    "--code",
                    KENT,
                    "--admin-email",
                    "admin@kent.test",
                ),
                _call_line(
                    "onboard_council",
                    "--name",
                    "Medway",
                    "--code",
                    MEDWAY,
                    "--admin-email",
                    "admin@medway.test",
                ),
                _call_line("export_council_card", KENT, "--output", str(card_a)),
            ),
            b,
            _script_of(
                _call_line(
                    "onboard_council",
                    "--name",
                    "Devon",
                    "--code",
                    DEVON,
                    "--admin-email",
                    "admin@devon.test",
                ),
                _call_line("export_council_card", DEVON, "--output", str(card_b)),
            ),
        )
        a.start("kent")
        b.start("devon")
        in_parallel(
            a,
            _script_of(
                _call_line("add_peer", str(card_b)),
                "from django_tenants.utils import schema_context",
                "from core.audit import audit_record",
                "with schema_context('council_e10000016'):",
                "    for n in range(6):",
                "        audit_record(actor=None, action='person_viewed', person_id=n + 1)",
            ),
            b,
            _script_of(_call_line("add_peer", str(card_a))),
        )
        witnessed = a.patchwork("audit_witness", KENT)
        assert "Kent: Devon witnessed checkpoint 1 (" in witnessed
        assert "Kent: Medway witnessed checkpoint 1 (" in witnessed
        # Devon (another deployment) is asked first.
        assert witnessed.index("Devon witnessed") < witnessed.index("Medway witnessed")
        events = int(witnessed.split("Devon witnessed checkpoint 1 (")[1].split(" ")[0])
        sound = _verify_on(a)
        assert "\nPASSED\n" in sound, sound
        assert "2 hold a witnessed checkpoint" in sound

        # Since the checkpoint: the witnessing and the verification were audited (2 events);
        # the cut removes 4.
        a.shell(CUT_AND_COVER)
        cut = _verify_on(a)
        assert "\nFAILED " in cut, cut
        assert (
            f"the audit log of Kent ends at event {events - 2}, but Devon witnessed a "
            f"checkpoint of {events} events on "
        ) in cut
        assert "WARNING: only 1 of 2 councils asked hold a witnessed checkpoint of Kent" in cut

        # The cut log signed afresh (this deployment holds Kent's key): Devon refuses it.
        again = a.shell(
            _script_of(
                "from django.core.management.base import CommandError",
                "try:",
                f"    {_call_line('audit_witness', KENT)}",
                "except CommandError as error:",
                "    print('REFUSED', error)",
            )
        )
        assert "Devon refused or did not answer (fork)" in again, again
        alerts = b.shell(
            "from django_tenants.utils import schema_context\n"
            "from federation.models import WitnessAlert\n"
            "with schema_context('council_e10000008'):\n"
            "    print([(a.peer_id, a.reason) for a in WitnessAlert.objects.all()])\n"
        )
        assert f"('council:{KENT}', 'fork')" in alerts


# --- On one deployment ----------------------------------------------------------------------


def test_two_partners_witness_and_an_untouched_log_passes(live) -> None:  # type: ignore[no-untyped-def]
    council = _subject(live, "Portsmouth", "E06000044")
    with schema_context(council.schema_name):
        chosen = [peer.federation_id for peer, _ in audit_witnesses_choose(council, 2)]
    # The partners with an agreement in force come before councils without one.
    assert set(chosen) == {council_federation_id(live.kent), council_federation_id(live.surrey)}
    latest = audit_checkpoint_latest(council)
    assert latest is not None
    for witness in (live.kent, live.surrey):
        held = _witnessed_by(witness, council)
        assert [row.sequence for row in held] == [latest.sequence]
        statement = held[-1].statement
        assert statement["type"] == "patchwork.audit-witness"
        assert statement["witness"] == council_federation_id(witness)
        assert statement["events"] == latest.document["events"]
        assert statement["checkpoint"] == latest.document
        # The council keeps the statement too, and it verifies with the witness's key.
        kept = AuditWitnessStatement.objects.get(
            council=council, witness=council_federation_id(witness)
        )
        assert kept.statement == statement
        public = signing_key(witness).private_key.public_key().public_bytes_raw()
        assert protocol.verify_document_signature(
            statement, council_federation_id(witness), lambda kid, key=public: key
        )

    report = _verify(council.code)
    assert "2 hold a witnessed checkpoint" in report
    # On demand, a council's checkpoint is witnessed again ("still at N").
    out = io.StringIO()
    call_command("audit_witness", council.code, stdout=out)
    assert f"Portsmouth: Kent witnessed checkpoint {latest.sequence + 1}" in out.getvalue()
    assert "Portsmouth: Surrey witnessed checkpoint" in out.getvalue()
    assert f"Kent witnessed checkpoint {latest.sequence} ({latest.document['events']} events)" in (
        report
    )
    assert "Surrey witnessed checkpoint" in report
    assert "intact" in report and "BROKEN" not in report and "WARNING" not in report


def test_an_unchanged_head_is_witnessed_again_with_a_fresh_time(live) -> None:  # type: ignore[no-untyped-def]
    council = _subject(live, "Southampton", "E06000045")
    before = _witnessed_by(live.kent, council)[-1]
    with schema_context(live.kent.schema_name):
        WitnessedCheckpoint.objects.filter(pk=before.pk).update(
            witnessed_at=timezone.now() - timedelta(hours=1)
        )
    with schema_context(council.schema_name):
        results = audit_witness_send(council=council)
    assert [result.witnessed for result in results] == [True, True]
    after = _witnessed_by(live.kent, council)
    assert [row.sequence for row in after] == [before.sequence]
    assert after[-1].witnessed_at > timezone.now() - timedelta(minutes=1)
    # The new statement carries the new time, and the same checkpoint.
    assert after[-1].statement["witnessed_at"] == protocol.timestamp(after[-1].witnessed_at)
    assert after[-1].statement["checkpoint"] == before.statement["checkpoint"]
    assert results[0].statement == after[-1].statement or results[1].statement == (
        after[-1].statement
    )


def test_a_grown_log_is_witnessed_through_its_intermediate_checkpoints(live) -> None:  # type: ignore[no-untyped-def]
    """Kent missed three checkpoints: it asks for them, checks each link, then witnesses."""
    council = _subject(live, "Isle of Wight", "E06000046")
    first = audit_checkpoint_latest(council)
    assert first is not None
    for n in range(3):
        with schema_context(council.schema_name):
            audit_record(actor=None, action="person_viewed", person_id=100 + n)
        audit_checkpoint_take(council=council)
    results = _witness(council)
    assert all(result.witnessed for result in results)
    latest = audit_checkpoint_latest(council)
    assert latest is not None and latest.sequence == first.sequence + 3
    held = _witnessed_by(live.kent, council)
    assert [row.sequence for row in held] == list(range(first.sequence, latest.sequence + 1))
    # The ones checked on the way are kept without a statement of their own.
    assert [row.statement is not None for row in held] == [True, False, False, True]
    assert held[-1].digest == checkpoint_digest(latest.document)
    assert MAX_INTERMEDIATE >= 3
    assert not _alerts(live.kent, council)


def test_a_witness_refuses_a_rolled_back_or_forked_checkpoint_and_keeps_an_alert(
    live,
) -> None:  # type: ignore[no-untyped-def]
    council = _subject(live, "Bournemouth", "E06000058")
    with schema_context(council.schema_name):
        audit_record(actor=None, action="person_viewed", person_id=99)
    _witness(council)
    newest = audit_checkpoint_latest(council)
    assert newest is not None and newest.sequence == 2
    older = AuditCheckpoint.objects.get(council=council, sequence=1)
    kent = peer_active(council_federation_id(live.kent))
    url = _base_url(live.kent)

    with schema_context(council.schema_name):
        rolled_back, _ = _send_one(council, kent, url, older)
        # Genuinely signed with the council's key, numbered 2, but recording fewer events:
        # what a cut log signed afresh looks like.
        fork = dict(newest.document)
        fork.pop("signatures")
        fork["events"] = int(fork["events"]) - 1
        fork = protocol.sign_document(fork, signing_key(council))
        forked, _ = _send_one(council, kent, url, AuditCheckpoint(sequence=2, document=fork))
        # Numbered 3, but naming a checkpoint 2 Kent never saw as the one before it.
        unlinked = dict(newest.document)
        unlinked.pop("signatures")
        unlinked.update(sequence=3, previous="0" * 64)
        unlinked = protocol.sign_document(unlinked, signing_key(council))
        broken, _ = _send_one(council, kent, url, AuditCheckpoint(sequence=3, document=unlinked))
        # More events, but fewer than checkpoint 2 recorded.
        shrunk = dict(unlinked)
        shrunk.pop("signatures")
        shrunk.update(previous=checkpoint_digest(newest.document), events=1)
        shrunk = protocol.sign_document(shrunk, signing_key(council))
        fewer, _ = _send_one(council, kent, url, AuditCheckpoint(sequence=3, document=shrunk))
    assert (rolled_back.witnessed, rolled_back.reason) == (False, "rolled_back")
    assert (forked.witnessed, forked.reason) == (False, "fork")
    assert (broken.witnessed, broken.reason) == (False, "broken_link")
    assert (fewer.witnessed, fewer.reason) == (False, "fewer_events")
    alerts = _alerts(live.kent, council)
    assert sorted(alert.reason for alert in alerts) == [
        "broken_link",
        "fewer_events",
        "fork",
        "rolled_back",
    ]
    # The witness (the server's process) logged each at ERROR.
    logged = live.log.read_text()
    assert logged.count("Audit witness: refused checkpoint") >= 4
    assert "Bournemouth (rolled_back)" in logged
    assert "after checkpoint 2" in next(a.detail for a in alerts if a.reason == "rolled_back")
    # What Kent witnessed is unchanged.
    assert _witnessed_by(live.kent, council)[-1].checkpoint == newest.document
    # The council's verification shows the witness's alerts.
    report = _verify(council.code)
    assert "Kent refused a checkpoint from Bournemouth" in report and "rolled_back" in report


def test_a_witness_refuses_a_forged_checkpoint(live) -> None:  # type: ignore[no-untyped-def]
    council = _subject(live, "Poole", "E06000029")
    latest = audit_checkpoint_latest(council)
    assert latest is not None
    forged = {k: v for k, v in latest.document.items() if k != "signatures"}
    forged.update(sequence=latest.sequence + 1, events=int(forged["events"]) + 10)
    forged["previous"] = checkpoint_digest(latest.document)
    real = signing_key(council)
    impostor = protocol.SigningKey(
        federation_id=real.federation_id,
        key_id=real.key_id,
        private_key=Ed25519PrivateKey.generate(),
    )
    forged = protocol.sign_document(forged, impostor)
    surrey = peer_active(council_federation_id(live.surrey))
    with schema_context(council.schema_name):
        result, body = _send_one(
            council, surrey, _base_url(live.surrey), AuditCheckpoint(sequence=2, document=forged)
        )
    assert (result.witnessed, result.reason) == (False, "bad_signature")
    assert body["outcome"] == "refused"
    assert [alert.reason for alert in _alerts(live.surrey, council)] == ["bad_signature"]
    assert [row.sequence for row in _witnessed_by(live.surrey, council)] == [latest.sequence]

    # Not a checkpoint at all (a head hash no log has, a count in words): a clear refusal,
    # nothing kept, no alert.
    for change in ({"head_hash": "f" * 100}, {"events": "many"}, {"sequence": 0}):
        malformed = protocol.sign_document({**forged, **change}, real)
        with schema_context(council.schema_name):
            result, body = _send_one(
                council,
                surrey,
                _base_url(live.surrey),
                AuditCheckpoint(sequence=2, document=malformed),
            )
        assert (result.reason, body["outcome"]) == ("not_a_checkpoint", "refused")
    assert len(_alerts(live.surrey, council)) == 1
    assert [row.sequence for row in _witnessed_by(live.surrey, council)] == [latest.sequence]


def test_truncation_with_checkpoints_and_statements_deleted_is_reported(live) -> None:  # type: ignore[no-untyped-def]
    """The newest events deleted, and every checkpoint and statement in the public schema:
    this database alone shows a shorter, consistent log. Each witness still holds the head."""
    council = _subject(live, "Plymouth", "E06000026")
    with schema_context(council.schema_name):
        length = AuditEvent.objects.count()
    witnessed = _witnessed_by(live.kent, council)[-1].events
    _as_superuser(
        council,
        "DELETE FROM core_auditevent WHERE id IN "
        "(SELECT id FROM core_auditevent ORDER BY id DESC LIMIT 3)",
    )
    _erase_checkpoints_and_statements(council)
    # Without witnesses, nothing is wrong to see.
    out = io.StringIO()
    call_command("verify_audit", council.code, "--no-checkpoint", stdout=out)
    assert f"{length - 3} events, intact" in out.getvalue()

    with pytest.raises(CommandError, match="broken") as failure:
        _verify(council.code)
    report = str(failure.value)
    for witness in ("Kent", "Surrey"):
        assert (
            f"the audit log of Plymouth ends at event {length - 3}, but {witness} witnessed a "
            f"checkpoint of {witnessed} events on "
        ) in report
        assert f"which {witness} witnessed on" in report and "no longer in this database" in report
    assert "2 hold a witnessed checkpoint" in report


def test_an_event_rewritten_and_rehashed_is_reported(live) -> None:  # type: ignore[no-untyped-def]
    """An event altered and every later hash recomputed (the chain links again), the
    checkpoints and statements deleted: only the witnesses' heads catch it."""
    council = _subject(live, "Torbay", "E06000027")
    witnessed = _witnessed_by(live.kent, council)[-1].events
    with schema_context(council.schema_name):
        events = list(AuditEvent.objects.order_by("id"))
    target = events[4]
    previous = events[3].hash
    statements = []
    for event in events[4:]:
        detail = {"person_viewed": "someone else"} if event.pk == target.pk else event.detail
        new = event_hash(
            at=event.at,
            actor_id=event.actor_id,
            actor_email=event.actor_email,
            action=event.action,
            person_id=event.person_id,
            detail=detail,
            previous_hash=previous,
        )
        statements.append((event.pk, detail, previous, new))
        previous = new
    assert previous != GENESIS
    with schema_context(council.schema_name), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE core_auditevent DISABLE TRIGGER USER")
        for pk, detail, before, new in statements:
            cursor.execute(
                "UPDATE core_auditevent SET detail = %s::jsonb, previous_hash = %s, hash = %s "
                "WHERE id = %s",
                [json.dumps(detail), before, new, pk],
            )
        cursor.execute("ALTER TABLE core_auditevent ENABLE TRIGGER USER")
    _erase_checkpoints_and_statements(council)
    out = io.StringIO()
    call_command("verify_audit", council.code, "--no-checkpoint", stdout=out)
    assert "intact" in out.getvalue()  # the chain alone links

    with pytest.raises(CommandError, match="broken") as failure:
        _verify(council.code)
    report = str(failure.value)
    head = events[witnessed - 1]
    assert (
        f"event {witnessed} (id {head.pk}) differs from the checkpoint Kent witnessed on "
    ) in report
    assert "the log was rewritten at or before it" in report


def test_an_event_altered_in_place_is_reported_against_the_witnessed_checkpoint(live) -> None:  # type: ignore[no-untyped-def]
    council = _subject(live, "Swindon", "E06000030")
    with schema_context(council.schema_name):
        target = AuditEvent.objects.order_by("id")[2]
    _as_superuser(
        council,
        f"UPDATE core_auditevent SET detail = '{{\"x\": 1}}'::jsonb WHERE id = {target.pk}",
    )
    with pytest.raises(CommandError, match="broken") as failure:
        _verify(council.code)
    report = str(failure.value)
    assert f"event 3 (id {target.pk}) differs from the checkpoint Kent witnessed on " in report
    assert f"event 3 (id {target.pk}) differs from the checkpoint Surrey witnessed on " in report


def _base_url(council: Council) -> str:
    peer = peer_active(council_federation_id(council))
    assert peer is not None
    return peer_base_url(peer)


def test_a_witness_that_does_not_answer_is_replaced_and_reported(live) -> None:  # type: ignore[no-untyped-def]
    """A council on another deployment ranks first but is down: the next in rank is asked
    instead, and verification names the one that did not answer."""
    dead = FederationPeer.objects.create(
        federation_id="council:W06000001",
        name="Isle of Anglesey",
        base_url=f"http://anglesey.localhost:{free_port()}",
    )
    # ...and one added without an address at all.
    nowhere = FederationPeer.objects.create(federation_id="council:W06000002", name="Gwynedd")
    try:
        council = _onboard("Wiltshire", "E06000054")
        make_agreement(council, live.kent)
        make_agreement(council, live.surrey)
        with schema_context(council.schema_name):
            audit_record(actor=None, action="person_viewed", person_id=1)
        results = _witness(council)
        assert sorted((r.peer.name, r.reason) for r in results if not r.witnessed) == [
            ("Gwynedd", "no_answer"),
            ("Isle of Anglesey", "no_answer"),
        ]
        assert sorted(r.peer.name for r in results if r.witnessed) == ["Kent", "Surrey"]
        report = _verify(council.code)
        assert "2 hold a witnessed checkpoint" in report
        warning = next(line for line in report.splitlines() if "WARNING: no answer from" in line)
        assert "Isle of Anglesey" in warning and "Gwynedd" in warning
    finally:
        dead.delete()
        nowhere.delete()


def test_beat_sends_every_councils_checkpoint_to_its_witnesses() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["audit-witness"]
    assert entry["task"] == "tenants.tasks.for_each_council"
    assert entry["schedule"] == settings.AUDIT_WITNESS_MINUTES * 60.0
    assert entry["args"] == [audit_witness_task.name]


@pytest.mark.redis
def test_a_real_worker_has_each_councils_checkpoint_witnessed(live, celery_worker) -> None:  # type: ignore[no-untyped-def]
    """Beat's message, run by a real Celery worker from the real Redis: the head, unchanged,
    is witnessed again by both witnesses ("still at N")."""
    council = _subject(live, "Reading", "E06000038")
    started = timezone.now()
    entry = settings.CELERY_BEAT_SCHEDULE["audit-witness"]
    for_each_council.delay(*entry["args"]).get(timeout=60)
    deadline = time.monotonic() + 120
    while (
        AuditWitnessStatement.objects.filter(council=council, received_at__gte=started).count() < 2
    ):
        assert time.monotonic() < deadline, "not witnessed within two minutes"
        time.sleep(0.5)
    for witness in (live.kent, live.surrey):
        newest = _witnessed_by(witness, council)[-1]
        assert newest.witnessed_at >= started - timedelta(seconds=1)


def test_a_witness_answers_only_requests_made_for_the_audit(world, db) -> None:  # type: ignore[no-untyped-def]
    """A request to the witness endpoints signed for another purpose (here an agreement's)
    is refused, and nothing is witnessed."""
    brighton, staffs = world.brighton, world.staffordshire
    with schema_context(brighton.schema_name):
        audit_record(actor=None, action="person_viewed", person_id=1)
    checkpoint = audit_checkpoint_take(council=brighton) or audit_checkpoint_latest(brighton)
    assert checkpoint is not None
    peer = peer_active(council_federation_id(staffs))
    assert peer is not None
    for path, payload in (
        (WITNESS_PATH, {"type": REQUEST_TYPE, "checkpoint": checkpoint.document}),
        (STATEMENT_PATH, {"type": QUERY_TYPE, "council": council_federation_id(brighton)}),
    ):
        with schema_context(brighton.schema_name):
            outgoing = signed_request(
                peer=peer,
                base_url="http://staffordshire.localhost",
                path=path,
                kind="audit_witness",
                agreement_id="",
                payload=payload,
                purpose="agreement",
            )
        headers = {k: v for k, v in outgoing.headers.items() if k.lower() != "content-type"}
        response = Client(HTTP_HOST="staffordshire.localhost").post(
            path, data=outgoing.body, content_type="application/json", headers=headers
        )
        assert response.status_code == 403
        assert response.json() == {"outcome": "refused", "reason": "purpose_not_covered"}
    with schema_context(staffs.schema_name):
        assert not WitnessedCheckpoint.objects.exists()


def test_the_agreement_endpoints_refuse_a_request_made_for_the_audit(world, db) -> None:  # type: ignore[no-untyped-def]
    """The other way round: `audit` opens only the witness endpoints. An agreement offer,
    countersignature, revocation or rekey signed for the audit is refused before it is read."""
    from federation.client import COUNTERSIGN_PATH, OFFER_PATH, REKEY_PATH, REVOKE_PATH

    brighton, staffs = world.brighton, world.staffordshire
    peer = peer_active(council_federation_id(staffs))
    assert peer is not None
    for path in (OFFER_PATH, COUNTERSIGN_PATH, REVOKE_PATH, REKEY_PATH):
        with schema_context(brighton.schema_name):
            outgoing = signed_request(
                peer=peer,
                base_url="http://staffordshire.localhost",
                path=path,
                kind="agreement_offer",
                agreement_id="",
                payload={"type": "patchwork.agreement-offer"},
                purpose="audit",
            )
        headers = {k: v for k, v in outgoing.headers.items() if k.lower() != "content-type"}
        response = Client(HTTP_HOST="staffordshire.localhost").post(
            path, data=outgoing.body, content_type="application/json", headers=headers
        )
        assert response.status_code == 403, path
        assert response.json() == {"outcome": "refused", "reason": "purpose_not_covered"}
