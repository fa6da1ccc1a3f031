"""Email behind one interface: GOV.UK Notify when a key is set (spoken to by a stand-in
Notify API on 127.0.0.1), a refused address marked failed at once, and meeting replies by
the signed link in the invitation."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from core.delivery.email import email_deliver, email_enqueue, email_send
from core.models import EmailOutbox
from teamwork.meetings import meeting_schedule, reply_token
from teamwork.models import MeetingInvitation

pytestmark = pytest.mark.django_db


class _NotifyStandIn(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, self.headers["Authorization"], body))  # type: ignore[attr-defined]
        status = 400 if body["email_address"].startswith("bad") else 201
        reply = (
            {"errors": [{"error": "ValidationError", "message": "Not a valid email address"}]}
            if status == 400
            else {"id": "notify-" + body["reference"]}
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(reply).encode())

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def notify(settings) -> Iterator[list[tuple[str, str, dict]]]:  # type: ignore[no-untyped-def]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotifyStandIn)
    server.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.NOTIFY_API_KEY = f"patchwork_test-{uuid.uuid4()}-{uuid.uuid4()}"
    settings.NOTIFY_TEMPLATE_ID = str(uuid.uuid4())
    settings.NOTIFY_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield server.requests  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_it_sends_through_notify_when_a_key_is_set(world, notify) -> None:
    """The email goes to Notify's email endpoint with our template and reference, signed."""
    with schema_context(world.brighton.schema_name):
        row = email_enqueue(
            key="t:notify",
            kind="notification",
            to_email="nia.nurse@brighton.test",
            subject="Patchwork: a task",
            body="Sam gave you a task",
        )
        assert email_deliver(outbox_id=row.pk) == "sent"
        row.refresh_from_db()
    (path, authorization, body) = notify[0]
    assert path == "/v2/notifications/email"
    assert authorization.startswith("Bearer ")
    assert body["personalisation"] == {
        "subject": "Patchwork: a task",
        "body": "Sam gave you a task",
    }
    assert body["reference"] == "t:notify"
    assert row.provider_reference == "notify-t:notify"


def test_an_address_notify_refuses_is_failed_at_once_for_admins(world, notify) -> None:
    """A 400 from Notify is permanent: no retries, the row shows failed with the reason."""
    with schema_context(world.brighton.schema_name):
        row = email_enqueue(
            key="t:bad", kind="notification", to_email="bad@brighton.test", subject="S", body="B"
        )
        assert email_send.apply(args=[row.pk]).get() == "failed"
        row.refresh_from_db()
    assert row.status == EmailOutbox.Status.FAILED
    assert "Not a valid email address" in row.last_error
    assert len(notify) == 1


def test_the_same_key_queues_one_email(world) -> None:
    """Enqueueing twice with one idempotency key leaves one row."""
    with schema_context(world.brighton.schema_name):
        for _ in range(2):
            email_enqueue(key="t:twice", kind="n", to_email="a@b.test", subject="S", body="B")
        assert EmailOutbox.objects.filter(idempotency_key="t:twice").count() == 1


def test_a_meeting_reply_link_records_the_answer_without_signing_in(world, scenario) -> None:
    """The nurse's 'I cannot come' link records her reply; a forged link is refused."""
    starts = timezone.now() + timedelta(days=2)
    with schema_context(world.brighton.schema_name):
        meeting = meeting_schedule(
            organiser=scenario.social_worker,
            person=scenario.ava,
            title="Core group",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            place="Hove Town Hall",
        )
        invitation = meeting.invitations.get(invitee=scenario.school_nurse)
        token = reply_token(invitation, "declined")
    client = Client(HTTP_HOST=world.brighton.get_primary_domain().domain)
    assert "I cannot come" in client.get(f"/meetings/reply/{token}/").content.decode()
    assert client.post(f"/meetings/reply/{token}/").status_code == 200
    with schema_context(world.brighton.schema_name):
        assert MeetingInvitation.objects.get(pk=invitation.pk).response == "declined"
    assert client.post(f"/meetings/reply/{token[:-2]}xx/").status_code == 400
