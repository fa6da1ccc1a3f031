"""Emails are sent exactly once by whoever claims them first, and the sweep finds what the
broker never carried (issue 14, point 4). The real SMTP server of tests/teamwork/conftest.py
counts what arrives."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes

from django.utils import timezone
from django_tenants.utils import schema_context

from core.delivery.email import email_deliver, email_due, email_enqueue, email_sweep
from core.models import EmailOutbox
from tests.teamwork.conftest import FlakySmtp


def _queued(key: str, *, minutes_ago: int = 0) -> EmailOutbox:
    row = email_enqueue(
        key=key, kind="notification", to_email="nia.nurse@brighton.test", subject="S", body="B"
    )
    if minutes_ago:
        EmailOutbox.objects.filter(pk=row.pk).update(
            created_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
    return row


def test_an_email_held_by_another_sender_is_not_sent_again(world, db, flaky_smtp) -> None:
    """While one sender holds the email (the sweep, say), a late broker message for it
    sends nothing; once it is sent, nobody sends it again."""
    with schema_context(world.brighton.schema_name):
        row = _queued("t:claimed")
        held_until = timezone.now() + timedelta(minutes=5)
        EmailOutbox.objects.filter(pk=row.pk).update(claimed_until=held_until)
        assert email_deliver(outbox_id=row.pk) == "skipped"
        assert flaky_smtp.received == []
        EmailOutbox.objects.filter(pk=row.pk).update(claimed_until=None)
        assert email_deliver(outbox_id=row.pk) == "sent"
        assert email_deliver(outbox_id=row.pk) == "skipped"
        row.refresh_from_db()
    assert len(flaky_smtp.received) == 1
    assert row.status == EmailOutbox.Status.SENT and row.claimed_until is None


def test_the_sweep_sends_what_the_broker_lost_and_leaves_fresh_emails_to_it(
    world, db, flaky_smtp, settings
) -> None:
    """An email queued over a minute ago is swept and sent once; one queued just now is left
    to its broker message; a second sweep sends nothing."""
    settings.SWEEP_AFTER_SECONDS = 60
    with schema_context(world.brighton.schema_name):
        lost = _queued("t:lost", minutes_ago=2)
        fresh = _queued("t:fresh")
        assert lost.pk in email_due() and fresh.pk not in email_due()
        assert email_sweep() == 1
        assert email_sweep() == 0
        lost.refresh_from_db()
    assert lost.status == EmailOutbox.Status.SENT
    assert [message_from_bytes(m)["X-Patchwork-Reference"] for m in flaky_smtp.received] == [
        "t:lost"
    ]


def test_a_claim_left_by_a_worker_that_died_expires_and_the_sweep_sends(
    world, db, flaky_smtp
) -> None:
    """A worker killed mid-send leaves its claim; the sweep waits for it to expire, then
    sends the email, once."""
    with schema_context(world.brighton.schema_name):
        row = _queued("t:orphaned", minutes_ago=10)
        EmailOutbox.objects.filter(pk=row.pk).update(
            claimed_until=timezone.now() + timedelta(minutes=1)
        )
        assert email_sweep() == 0
        EmailOutbox.objects.filter(pk=row.pk).update(
            claimed_until=timezone.now() - timedelta(seconds=1)
        )
        assert email_sweep() == 1
    assert len(flaky_smtp.received) == 1


def test_a_failed_attempt_waits_before_the_sweep_tries_again(
    world, db, flaky_smtp, settings
) -> None:
    """The server says "try later": the email stays queued, unclaimed, and is not swept
    until its wait is over; then it is sent, with the same Message-ID as the first try."""
    settings.EMAIL_RETRY_SECONDS = 60
    flaky_smtp.refuse = 1
    with schema_context(world.brighton.schema_name):
        row = _queued("t:later", minutes_ago=5)
        assert email_deliver(outbox_id=row.pk) == "retry"
        row.refresh_from_db()
        assert row.status == EmailOutbox.Status.QUEUED and row.claimed_until is None
        assert row.next_attempt_at > timezone.now() + timedelta(seconds=50)
        assert email_sweep() == 0
        EmailOutbox.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        assert email_sweep() == 1
        row.refresh_from_db()
    assert row.attempts == 2
    assert flaky_smtp.refused == 1 and len(flaky_smtp.received) == 1


def test_a_resent_email_keeps_its_message_id_and_councils_never_share_one(
    world, db, flaky_smtp: FlakySmtp
) -> None:
    """Sent twice (as after a worker died between sending and marking), an email carries
    one Message-ID, so mail stores keep one copy; the same key in another council differs."""
    ids = []
    for council in (world.brighton, world.brighton, world.staffordshire):
        with schema_context(council.schema_name):
            row = _queued("t:same-key")
            EmailOutbox.objects.filter(pk=row.pk).update(status=EmailOutbox.Status.QUEUED)
            assert email_deliver(outbox_id=row.pk) == "sent"
    ids = [message_from_bytes(m)["Message-ID"] for m in flaky_smtp.received]
    assert ids[0] == ids[1] != ids[2]


def test_metrics_count_the_emails_the_sweep_has_not_sent(world, db, settings) -> None:
    """An email still queued two sweeps after it was due shows on /metrics for its council
    (the sweep is not running); one queued just now does not."""
    from deploy.metrics import DeploymentCollector

    settings.SWEEP_AFTER_SECONDS = 60
    settings.SWEEP_SECONDS = 60

    def overdue() -> float:
        families = {f.name: f for f in DeploymentCollector().collect()}
        samples = families["patchwork_email_outbox_overdue"].samples
        return sum(s.value for s in samples if s.labels["council"] == world.brighton.code)

    before = overdue()
    with schema_context(world.brighton.schema_name):
        _queued("t:fresh-for-metrics")
        stuck = _queued("t:stuck")
        EmailOutbox.objects.filter(pk=stuck.pk).update(
            next_attempt_at=timezone.now() - timedelta(minutes=4)
        )
    assert overdue() == before + 1
