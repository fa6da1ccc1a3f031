"""A service's reply to a brokered contact request reaches the requester (issue 15): on the
person's page and their contact requests page, as a notification, and by email through the
outbox to a real SMTP server on 127.0.0.1 (tests/teamwork/conftest.py)."""

from __future__ import annotations

import html
from email import message_from_bytes

import pytest
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context

from core.delivery.email import email_deliver
from core.delivery.notifications import notifications_email_immediate
from core.models import ContactRequest, EmailOutbox, Notification
from core.services import contact_request_decide, contact_request_send
from tests.personas import client_for

pytestmark = pytest.mark.django_db

REPLY = "Happy to talk — I'll call after 2pm"


def _ask(world, scenario) -> ContactRequest:  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return contact_request_send(
            user=scenario.school_nurse,
            person=scenario.ava,
            organisation=scenario.camhs,
            message="Ava mentioned appointments during school hours.",
        )


def test_an_accepted_reply_reaches_the_requester_on_the_page_in_the_app_and_by_email(
    world, scenario, flaky_smtp
) -> None:
    """The nurse reads the CAMHS worker's words, name and number on Ava's page and on her
    requests page, in her notifications, and in the email the SMTP server received."""
    request = _ask(world, scenario)
    with schema_context(world.brighton.schema_name):
        contact_request_decide(
            user=scenario.camhs_worker, request=request, accept=True, response=REPLY
        )
        told = Notification.objects.get(recipient=scenario.school_nurse, kind="contact_answered")
        assert REPLY in told.text and scenario.camhs_worker.full_name in told.text
        assert notifications_email_immediate() >= 1
        outbox = EmailOutbox.objects.get(idempotency_key=f"notification:{told.pk}")
        assert email_deliver(outbox_id=outbox.pk) == "sent"
    (received,) = [
        m
        for m in map(message_from_bytes, flaky_smtp.received)
        if m["To"] == scenario.school_nurse.email
    ]
    body = received.get_payload(decode=True).decode()
    assert REPLY in body
    assert scenario.camhs_worker.full_name in body

    nurse = client_for(world, scenario.school_nurse)
    # The page's text as a browser reads it, whichever escaping wrote it.
    person_page = html.unescape(nurse.get(f"/people/{scenario.ava.pk}/").content.decode())
    assert "Your requests to be put in touch" in person_page
    assert REPLY in person_page
    requests_page = html.unescape(nurse.get("/my/contact-requests/").content.decode())
    assert REPLY in requests_page
    assert scenario.camhs_worker.full_name in requests_page
    assert REPLY in html.unescape(nurse.get("/my/notifications/").content.decode())


def test_a_declined_reply_is_shown_without_naming_who_declined(world, scenario) -> None:
    """A refusal's words reach the requester; the person who declined is never named, and
    the service's name is not shown either."""
    request = _ask(world, scenario)
    with schema_context(world.brighton.schema_name):
        contact_request_decide(
            user=scenario.camhs_worker,
            request=request,
            accept=False,
            response="Please speak to the lead professional instead.",
        )
        told = Notification.objects.get(recipient=scenario.school_nurse, kind="contact_answered")
    assert "Please speak to the lead professional instead." in told.text
    assert scenario.camhs_worker.full_name not in told.text
    nurse = client_for(world, scenario.school_nurse)
    for path in (f"/people/{scenario.ava.pk}/", "/my/contact-requests/"):
        page = html.unescape(nurse.get(path).content.decode())
        assert "Please speak to the lead professional instead." in page
        assert scenario.camhs_worker.full_name not in page
        assert "Sussex CAMHS" not in page


def test_a_reply_too_long_is_refused_in_words_and_changes_nothing(world, scenario) -> None:
    """Over 1000 characters: the service is told the limit, the request stays waiting and
    the requester hears nothing."""
    request = _ask(world, scenario)
    with schema_context(world.brighton.schema_name):
        with pytest.raises(ValidationError) as refused:
            contact_request_decide(
                user=scenario.camhs_worker, request=request, accept=True, response="x" * 1001
            )
        assert refused.value.message_dict["response"] == [
            "Keep your message to the requester to 1000 characters"
        ]
        request.refresh_from_db()
        assert request.status == ContactRequest.Status.PENDING
        assert not Notification.objects.filter(
            kind="contact_answered", recipient=scenario.school_nurse
        ).exists()


def test_nobody_else_sees_the_reply_on_the_persons_page(world, scenario) -> None:
    """The lead professional, on the same child's team, does not see the nurse's request or
    its reply: only the requester's own requests are listed."""
    request = _ask(world, scenario)
    with schema_context(world.brighton.schema_name):
        contact_request_decide(
            user=scenario.camhs_worker, request=request, accept=True, response=REPLY
        )
    lead = client_for(world, scenario.social_worker)
    page = html.unescape(lead.get(f"/people/{scenario.ava.pk}/").content.decode())
    assert REPLY not in page
    assert "Your requests to be put in touch" not in page
