"""Working as one team, inside one transaction per test: who sees what on the timeline,
contacts, tasks, messages, meetings, reminders and notification choices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils import timezone
from django_tenants.utils import schema_context

from core.delivery.notifications import notification_preferences_set, notifications_email_immediate
from core.models import EmailOutbox, Involvement, Notification, NotificationPreference
from core.selectors import person_network
from core.services import record_open
from teamwork.contacts import contact_log
from teamwork.meetings import meeting_change, meeting_schedule
from teamwork.messages import team_message_send
from teamwork.models import InvolvementReminder, Task
from teamwork.reminders import reminder_answer, reminder_token, reminders_run
from teamwork.team_tasks import task_close, task_create, tasks_mine
from teamwork.timeline import family_timeline, person_timeline
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db


def _texts(user, person) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.text for e in person_timeline(user=user, person_id=person.pk).entries]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("social_worker", "sees"),
        ("school_nurse", "sees"),
        ("camhs_worker", "sees"),
        ("teacher", Http404),
        ("mash_worker", Http404),
        ("admin", Http404),
    ],
)
def test_the_timeline_is_open_to_whoever_may_see_the_network(
    world, scenario, who, expected
) -> None:
    """The team sees Ava's timeline; people who never found her, and admins, get 404."""
    with schema_context(world.brighton.schema_name):
        user = getattr(scenario, who)
        if expected == "sees":
            assert any("joined the team" in text for text in _texts(user, scenario.ava))
        else:
            with pytest.raises(expected):
                person_timeline(user=user, person_id=scenario.ava.pk)


def test_a_sensitive_service_shows_only_as_the_brokered_notice_to_others(world, scenario) -> None:
    """The nurse sees that a sensitive service is involved, never which; CAMHS sees itself."""
    with schema_context(world.brighton.schema_name):
        contact_log(actor=scenario.camhs_worker, person=scenario.ava, kind="saw")
        nurse_view = person_timeline(user=scenario.school_nurse, person_id=scenario.ava.pk)
        camhs_view = person_timeline(user=scenario.camhs_worker, person_id=scenario.ava.pk)
    nurse_text = " ".join(e.text for e in nurse_view.entries)
    assert nurse_view.brokered_notices == 1
    assert "CAMHS" not in nurse_text
    assert scenario.camhs_worker.full_name not in nurse_text
    assert any("Sussex CAMHS" in e.text for e in camhs_view.entries)
    assert any(f"{scenario.camhs_worker.full_name} saw Ava" == e.text for e in camhs_view.entries)


def test_the_timeline_is_newest_first_and_filters_by_kind(world, scenario) -> None:
    """Today's contact sits above last month's joining; filtering leaves only tasks."""
    with schema_context(world.brighton.schema_name):
        contact_log(actor=scenario.school_nurse, person=scenario.ava, kind="spoke")
        task_create(
            actor=scenario.social_worker,
            person=scenario.ava,
            assignee=scenario.school_nurse,
            text="Share the school attendance figures",
            due_date=timezone.localdate(),
        )
        entries = person_timeline(user=scenario.social_worker, person_id=scenario.ava.pk).entries
        tasks = person_timeline(
            user=scenario.social_worker, person_id=scenario.ava.pk, kinds=["task"]
        ).entries
    assert [e.sort_key for e in entries] == sorted((e.sort_key for e in entries), reverse=True)
    assert entries[-1].kind == "team"
    assert [e.kind for e in tasks] == ["task"]


def test_openings_by_outsiders_appear_to_the_team_only(world, scenario) -> None:
    """A teacher who stated a reason sees the timeline but not who opened the record."""
    with schema_context(world.brighton.schema_name):
        record_open(
            user=scenario.teacher,
            person=scenario.ava,
            reason="safeguarding",
            note="Ava disclosed something in class today",
        )
        team_view = _texts(scenario.social_worker, scenario.ava)
        teacher_view = _texts(scenario.teacher, scenario.ava)
    assert any("opened the record: Safeguarding concern" in t for t in team_view)
    assert not any("opened the record" in t for t in teacher_view)


def test_the_family_timeline_leaves_out_a_shielded_relative(world, scenario) -> None:
    """Ava's brother shows on the family timeline; shielded Zed only to his own team."""
    from core.services import relationship_add

    with schema_context(world.brighton.schema_name):
        brother = PersonFactory(given_name="Leo", family_name="O'Brien-Smith")
        relationship_add(actor=None, person=scenario.ava, relative=brother, kind="sibling")
        relationship_add(actor=None, person=scenario.ava, relative=scenario.zed, kind="household")
        nurse = family_timeline(user=scenario.school_nurse, person_id=scenario.ava.pk)
        social_worker = family_timeline(user=scenario.social_worker, person_id=scenario.ava.pk)
    assert [p.given_name for p in nurse.people] == ["Ava", "Leo"]
    assert {p.given_name for p in social_worker.people} == {"Ava", "Leo", "Zed"}


def test_a_logged_contact_becomes_the_last_contact_on_the_network(world, scenario) -> None:
    """The nurse saw Ava two days ago; the network says so."""
    day = timezone.localdate() - timedelta(days=2)
    with schema_context(world.brighton.schema_name):
        contact_log(actor=scenario.school_nurse, person=scenario.ava, kind="saw", contact_date=day)
        network = person_network(
            user=scenario.social_worker, person_id=scenario.ava.pk, audit=False
        )
    nurse = next(
        m for m in network.current if m.practitioner_name == scenario.school_nurse.full_name
    )
    assert nurse.last_contact_date == day


def test_only_the_team_logs_contacts_and_never_in_the_future(world, scenario) -> None:
    """The teacher is not involved; tomorrow is refused; nothing is recorded."""
    with schema_context(world.brighton.schema_name):
        with pytest.raises(ValidationError, match="currently involved"):
            contact_log(actor=scenario.teacher, person=scenario.ava, kind="saw")
        with pytest.raises(ValidationError, match="future"):
            contact_log(
                actor=scenario.school_nurse,
                person=scenario.ava,
                kind="saw",
                contact_date=timezone.localdate() + timedelta(days=1),
            )
        assert not scenario.ava.contacts.exists()


def test_an_assigned_task_reaches_the_assignee_and_closes(world, scenario) -> None:
    """The nurse is told, finds it in her tasks, and marks it done."""
    with schema_context(world.brighton.schema_name):
        task = task_create(
            actor=scenario.social_worker,
            person=scenario.ava,
            assignee=scenario.school_nurse,
            text="Ask Ava's class teacher to join the core group",
            due_date=timezone.localdate(),
        )
        assert Notification.objects.filter(
            recipient=scenario.school_nurse, kind="task_assigned"
        ).exists()
        assert list(tasks_mine(scenario.school_nurse)) == [task]
        task_close(actor=scenario.school_nurse, task=task, status="done")
        assert not tasks_mine(scenario.school_nurse).exists()
        with pytest.raises(ValidationError, match="already closed"):
            task_close(actor=scenario.social_worker, task=task, status="cancelled")


@pytest.mark.parametrize(
    ("who", "assignee", "expected"),
    [
        ("school_nurse", "camhs_worker", Http404),  # a sensitive service is not named to others
        ("teacher", "school_nurse", Http404),  # not on the team, never found Ava
        ("camhs_worker", "camhs_worker", None),  # may set a task for oneself
        ("camhs_worker", "school_nurse", None),
    ],
)
def test_who_may_set_tasks_for_whom(world, scenario, who, assignee, expected) -> None:
    """Tasks are set by the team, for colleagues the setter may name."""
    with schema_context(world.brighton.schema_name):
        call = lambda: task_create(  # noqa: E731
            actor=getattr(scenario, who),
            person=scenario.ava,
            assignee=getattr(scenario, assignee),
            text="Phone the family",
            due_date=timezone.localdate(),
        )
        if expected is None:
            assert call().status == Task.Status.OPEN
        else:
            with pytest.raises(expected):
                call()


def test_a_task_is_coordination_not_case_notes(world, scenario) -> None:
    """Over 280 characters is refused with a reason; a past due date too."""
    with schema_context(world.brighton.schema_name):
        with pytest.raises(ValidationError, match="not for case notes"):
            task_create(
                actor=scenario.social_worker,
                person=scenario.ava,
                assignee=scenario.school_nurse,
                text="x" * 281,
                due_date=timezone.localdate(),
            )
        with pytest.raises(ValidationError, match="today or in the future"):
            task_create(
                actor=scenario.social_worker,
                person=scenario.ava,
                assignee=scenario.school_nurse,
                text="Phone mum",
                due_date=timezone.localdate() - timedelta(days=1),
            )
        assert not Task.objects.filter(person=scenario.ava).exists()


def test_an_overdue_task_says_overdue_in_words(world, scenario) -> None:
    """A task past its due date is marked "Overdue" on My tasks, not only coloured."""
    from tests.personas import sign_in

    with schema_context(world.brighton.schema_name):
        task = task_create(
            actor=scenario.social_worker,
            person=scenario.ava,
            assignee=scenario.school_nurse,
            text="Send the health plan",
            due_date=timezone.localdate(),
        )
        Task.objects.filter(pk=task.pk).update(due_date=timezone.localdate() - timedelta(days=3))
    page = sign_in(world.brighton_school_nurse).get("/tasks/").content.decode()
    assert "Send the health plan" in page
    assert "Overdue" in page


@pytest.mark.parametrize(
    ("target", "lands_on"),
    [
        ("/\\evil.example/", "/tasks/"),
        ("//evil.example/", "/tasks/"),
        ("https://evil.example/", "/tasks/"),
        ("/people/1/timeline/", "/people/1/timeline/"),
    ],
)
def test_closing_a_task_never_sends_you_to_another_site(world, scenario, target, lands_on) -> None:
    """The `next` page after closing a task is followed only on this council's own site
    (browsers read `/\\evil.example/` as `//evil.example/`); otherwise back to My tasks."""
    from tests.personas import sign_in

    with schema_context(world.brighton.schema_name):
        task = task_create(
            actor=scenario.social_worker,
            person=scenario.ava,
            assignee=scenario.school_nurse,
            text="Book the review",
            due_date=timezone.localdate(),
        )
    response = sign_in(world.brighton_school_nurse).post(
        f"/tasks/{task.pk}/", {"status": "done", "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == lands_on
    with schema_context(world.brighton.schema_name):
        assert Task.objects.get(pk=task.pk).status == Task.Status.DONE


def test_a_message_to_the_whole_team_skips_the_sensitive_service(world, scenario) -> None:
    """The nurse's message reaches the social worker; CAMHS only by a brokered request."""
    with schema_context(world.brighton.schema_name):
        message = team_message_send(
            sender=scenario.school_nurse, person=scenario.ava, text="Ava was absent all week"
        )
        assert set(message.recipients.all()) == {scenario.social_worker}
        assert Notification.objects.filter(
            recipient=scenario.social_worker, kind="team_message"
        ).exists()
        assert EmailOutbox.objects.filter(
            to_email=scenario.social_worker.email, kind="team_message"
        ).exists()
        with pytest.raises(Http404):
            team_message_send(
                sender=scenario.school_nurse,
                person=scenario.ava,
                text="Hello",
                recipient_ids=[scenario.camhs_worker.pk],
            )
        with pytest.raises(PermissionDenied):
            record_open(
                user=scenario.teacher,
                person=scenario.ava,
                reason="safeguarding",
                note="Concern raised at school today",
            )
            team_message_send(sender=scenario.teacher, person=scenario.ava, text="Hello")


def test_the_message_page_offers_a_brokered_request_to_the_sensitive_service(
    world, scenario
) -> None:
    """The nurse asks 'a sensitive service' to get in touch without learning which."""
    from core.models import ContactRequest
    from tests.personas import sign_in

    client = sign_in(world.brighton_school_nurse)
    page = client.get(f"/people/{scenario.ava.pk}/messages/new/").content.decode()
    assert "Ask a sensitive service to get in touch" in page
    assert "CAMHS" not in page
    response = client.post(
        f"/people/{scenario.ava.pk}/messages/new/",
        {"form": "brokered", "service": "0", "message": "Ava mentioned seeing someone weekly"},
    )
    assert response.status_code == 302
    with schema_context(world.brighton.schema_name):
        assert ContactRequest.objects.get(person=scenario.ava).organisation == scenario.camhs


def test_only_the_organiser_changes_a_meeting(world, scenario) -> None:
    """The whole team (as the organiser may name it) is invited; an invitee cannot move it."""
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
        invited = {i.invitee for i in meeting.invitations.all()}
        with pytest.raises(PermissionDenied):
            meeting_change(
                actor=scenario.school_nurse,
                meeting=meeting,
                title="Moved",
                starts_at=starts,
                ends_at=starts + timedelta(hours=2),
                place="Elsewhere",
            )
    assert invited == {scenario.school_nurse}


def test_an_unconfirmed_involvement_is_flagged_to_the_team_never_ended(world, scenario) -> None:
    """After 14 days' grace the team is told, and the timeline says 'unconfirmed since'."""
    with schema_context(world.brighton.schema_name):
        nurse_involvement = Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        )
        Involvement.objects.filter(pk=nurse_involvement.pk).update(
            last_confirmed_at=timezone.now() - timedelta(days=91)
        )
        first = reminders_run()
        assert first.reminded == 1 and len(first.emails) == 1
        assert reminders_run().reminded == 0  # one reminder per cycle
        later = reminders_run(now=timezone.now() + timedelta(days=15))
        assert later.flagged == 1
        told = Notification.objects.filter(kind="involvement_unconfirmed", person=scenario.ava)
        assert {n.recipient for n in told} == {scenario.social_worker, scenario.camhs_worker}
        texts = _texts(scenario.social_worker, scenario.ava)
        nurse_involvement.refresh_from_db()
    assert any("unconfirmed since" in t and scenario.school_nurse.full_name in t for t in texts)
    assert nurse_involvement.end_date is None


def test_no_longer_involved_by_link_ends_the_involvement_as_history(world, scenario) -> None:
    """The answer ends the involvement as 'no longer involved'; it stays as history."""
    with schema_context(world.brighton.schema_name):
        involvement = Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        )
        Involvement.objects.filter(pk=involvement.pk).update(
            last_confirmed_at=timezone.now() - timedelta(days=100)
        )
        reminders_run()
        reminder = InvolvementReminder.objects.get(involvement=involvement)
        reminder_answer(token=reminder_token(reminder.pk, "ended"))
        involvement.refresh_from_db()
        with pytest.raises(ValidationError, match="already used"):
            reminder_answer(token=reminder_token(reminder.pk, "still"))
    assert involvement.end_date == timezone.localdate()
    assert involvement.end_reason == Involvement.EndReason.NOT_CONFIRMED


def test_a_practitioner_who_chose_the_digest_gets_no_immediate_email(world, scenario) -> None:
    """The nurse moves task emails to the digest: the sweep leaves hers for the morning."""
    with schema_context(world.brighton.schema_name):
        notification_preferences_set(
            user=scenario.school_nurse, choices={"task_assigned": "digest"}
        )
        notification_preferences_set(
            user=scenario.social_worker, choices={"task_assigned": "immediate"}
        )
        task_create(
            actor=scenario.social_worker,
            person=scenario.ava,
            assignee=scenario.school_nurse,
            text="Phone the family",
            due_date=timezone.localdate(),
        )
        task_create(
            actor=scenario.school_nurse,
            person=scenario.ava,
            assignee=scenario.social_worker,
            text="Check the plan",
            due_date=timezone.localdate(),
        )
        notifications_email_immediate()
        assert NotificationPreference.objects.get(user=scenario.school_nurse).delivery == "digest"
        assert not EmailOutbox.objects.filter(to_email=scenario.school_nurse.email).exists()
        assert EmailOutbox.objects.filter(to_email=scenario.social_worker.email).count() == 1
        with pytest.raises(ValidationError):
            notification_preferences_set(
                user=scenario.school_nurse, choices={"task_assigned": "pigeon"}
            )


@pytest.mark.parametrize(
    ("persona", "status"), [("brighton_admin", 200), ("brighton_school_nurse", 403)]
)
def test_failed_addresses_are_shown_to_administrators(world, db, persona, status) -> None:
    """An address the mail server refused is listed for administrators only."""
    from tests.personas import sign_in

    with schema_context(world.brighton.schema_name):
        EmailOutbox.objects.create(
            idempotency_key="t:1",
            kind="notification",
            to_email="gone@brighton.test",
            subject="Patchwork: a task",
            status=EmailOutbox.Status.FAILED,
            last_error="550 No such user",
        )
    response = sign_in(getattr(world, persona)).get("/admin/email/problems/")
    assert response.status_code == status
    if status == 200:
        assert "gone@brighton.test" in response.content.decode()
        assert "550 No such user" in response.content.decode()
