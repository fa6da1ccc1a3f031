"""'Tasks I set' beside 'My tasks' (issue 15): the tasks someone set for colleagues, open
ones first, with who they are for and whether they are done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import escape
from django_tenants.utils import schema_context

from teamwork.models import Task
from teamwork.team_tasks import task_close, task_create, tasks_set_by
from tests.personas import client_for

pytestmark = pytest.mark.django_db


def _set(scenario, actor, assignee, text: str, days: int = 7) -> Task:  # type: ignore[no-untyped-def]
    return task_create(
        actor=actor,
        person=scenario.ava,
        assignee=assignee,
        text=text,
        due_date=timezone.localdate() + timedelta(days=days),
    )


def test_tasks_i_set_for_colleagues_are_listed_with_their_state(world, scenario) -> None:
    """The lead sees what she asked of the nurse (open, then done), not her own task and
    not the nurse's; the nurse's list of tasks she set stays empty."""
    with schema_context(world.brighton.schema_name):
        for_nurse = _set(scenario, scenario.social_worker, scenario.school_nurse, "Book the review")
        done = _set(scenario, scenario.social_worker, scenario.school_nurse, "Send the plan", 2)
        own = _set(scenario, scenario.social_worker, scenario.social_worker, "Ring the GP")
        by_nurse = _set(scenario, scenario.school_nurse, scenario.social_worker, "Sign the form")
        task_close(actor=scenario.school_nurse, task=done, status=Task.Status.DONE)
        assert list(tasks_set_by(scenario.social_worker)) == [for_nurse, done]
        assert list(tasks_set_by(scenario.school_nurse)) == [by_nurse]

    page = client_for(world, scenario.social_worker).get("/tasks/").content.decode()
    section = page[
        page.index('id="tasks-i-set"') : page.index("</table>", page.index('id="tasks-i-set"'))
    ]
    assert "Tasks I set" in page
    assert for_nurse.text in section and done.text in section
    assert own.text not in section and by_nurse.text not in section
    assert escape(scenario.school_nurse.full_name) in section
    assert section.index(for_nurse.text) < section.index(done.text)
    assert "Done" in section[section.index(done.text) :]
    assert f'Cancel<span class="govuk-visually-hidden"> the task: {for_nurse.text}' in section


def test_the_setter_cancels_from_tasks_i_set_and_nobody_else_can(world, scenario) -> None:
    """The cancel button closes the task for the lead; the teacher, who neither set it nor
    has it, gets a 404 and the task stays open."""
    with schema_context(world.brighton.schema_name):
        task = _set(scenario, scenario.social_worker, scenario.school_nurse, "Book the review")
    teacher = client_for(world, scenario.teacher)
    assert teacher.post(f"/tasks/{task.pk}/", {"status": "cancelled"}).status_code == 404
    with schema_context(world.brighton.schema_name):
        task.refresh_from_db()
        assert task.status == Task.Status.OPEN
    lead = client_for(world, scenario.social_worker)
    assert lead.post(f"/tasks/{task.pk}/", {"status": "cancelled"}).status_code == 302
    with schema_context(world.brighton.schema_name):
        task.refresh_from_db()
        assert task.status == Task.Status.CANCELLED and task.closed_by == scenario.social_worker
