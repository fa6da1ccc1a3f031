"""A sensitive service's involvement is shown to everyone outside it only as "a sensitive
service is involved": nothing in a page, link, form field, API answer or error may let them
work out which service or practitioner it is (issue 14, points 1 and 2)."""

from __future__ import annotations

import base64
import binascii
import re

import pytest
from django.core.exceptions import ValidationError
from django.utils.html import escape
from django_tenants.utils import schema_context

from core.models import ContactRequest, Involvement, Organisation
from core.selectors import contact_reference
from core.services import involvement_add
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PractitionerFactory,
    RoleFactory,
)
from tests.personas import client_for

AVA_NHS = {"nhs_number": "943 476 5919"}


def _references(html: str, person_id: int) -> list[str]:
    prefix = f"/people/{person_id}/contact-requests/new/?service="
    return [m.replace("%3A", ":") for m in re.findall(re.escape(prefix) + r'([^"&]+)', html)]


def _decodings(reference: str) -> set[str]:
    """Every way the parts of a link could be read as base64 (how `signing.dumps` writes)."""
    found = set()
    for part in re.split(r"[:.]", reference):
        for text in (part, part.lstrip(".")):
            try:
                found.add(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
    return found


def _opened_by_teacher(world, scenario):  # type: ignore[no-untyped-def]
    """The teacher, outside every team, opens Ava's record having stated a reason."""
    teacher = client_for(world, scenario.teacher)
    teacher.post("/search/", AVA_NHS)
    opened = teacher.post(
        f"/people/{scenario.ava.pk}/",
        {"reason": "safeguarding", "note": "Ava said something worrying in class today."},
    )
    assert opened.status_code == 302
    return teacher


def test_it_gives_an_outsider_a_contact_link_that_does_not_hold_the_service(
    world, scenario
) -> None:
    """The "request contact" link is opaque: no part of it decodes to the service's id (the
    id is all an outsider needs to read the name from the profile page's list), and the
    page names neither the service nor its practitioner."""
    teacher = _opened_by_teacher(world, scenario)
    html = teacher.get(f"/people/{scenario.ava.pk}/").content.decode()
    (reference,) = _references(html, scenario.ava.pk)
    assert str(scenario.camhs.pk) not in _decodings(reference)
    assert "Sussex CAMHS" not in html and escape(scenario.camhs_worker.full_name) not in html
    form = teacher.get(f"/people/{scenario.ava.pk}/contact-requests/new/?service={reference}")
    assert form.status_code == 200
    assert f'value="{reference}"' in form.content.decode()
    assert str(scenario.camhs.pk) not in _decodings(reference)


def test_it_makes_each_link_for_one_person_and_one_viewer(world, scenario) -> None:
    """The same service has a different reference for another child or another viewer, so
    links cannot be compared; a reference works only for the viewer and person it was made
    for, and the request still reaches the service."""
    with schema_context(world.brighton.schema_name):
        role = RoleFactory(name="Counsellor")
        InvolvementFactory(
            person=scenario.zed,
            practitioner=scenario.camhs_worker.practitioner,
            role=role,
        )
    nurse = client_for(world, scenario.school_nurse)
    teacher = _opened_by_teacher(world, scenario)
    social_worker = client_for(world, scenario.social_worker)
    (nurse_ava,) = _references(
        nurse.get(f"/people/{scenario.ava.pk}/").content.decode(), scenario.ava.pk
    )
    (teacher_ava,) = _references(
        teacher.get(f"/people/{scenario.ava.pk}/").content.decode(), scenario.ava.pk
    )
    (social_zed,) = _references(
        social_worker.get(f"/people/{scenario.zed.pk}/").content.decode(), scenario.zed.pk
    )
    (social_ava,) = _references(
        social_worker.get(f"/people/{scenario.ava.pk}/").content.decode(), scenario.ava.pk
    )
    assert len({nurse_ava, teacher_ava, social_zed, social_ava}) == 4
    url = f"/people/{scenario.ava.pk}/contact-requests/new/?service="
    assert nurse.get(url + teacher_ava).status_code == 404
    assert social_worker.get(url + social_zed).status_code == 404
    assert nurse.get(url + "5").status_code == 404
    sent = nurse.post(
        f"/people/{scenario.ava.pk}/contact-requests/new/",
        {"service": nurse_ava, "message": "Ava mentioned appointments at school."},
    )
    assert sent.status_code == 302
    with schema_context(world.brighton.schema_name):
        request = ContactRequest.objects.get(organisation=scenario.camhs)
        assert request.requested_by == scenario.school_nurse


def test_it_does_not_name_a_sensitive_service_among_those_who_viewed(world, scenario) -> None:
    """The team sees who has viewed the record; a view by the sensitive service's own worker
    would name them, and so the service. Outside the service it reads "someone from a
    sensitive service"; inside it, the colleague is named."""
    client_for(world, scenario.camhs_worker).get(f"/people/{scenario.ava.pk}/")
    nurse_page = client_for(world, scenario.school_nurse).get(f"/people/{scenario.ava.pk}/views/")
    html = nurse_page.content.decode()
    assert "Someone from a sensitive service" in html
    assert escape(scenario.camhs_worker.full_name) not in html and "Sussex CAMHS" not in html
    with schema_context(world.brighton.schema_name):
        InvolvementFactory(
            person=scenario.ava,
            practitioner=scenario.camhs_colleague.practitioner,
            role=RoleFactory(name="CAMHS duty worker"),
        )
    own = client_for(world, scenario.camhs_colleague).get(f"/people/{scenario.ava.pk}/views/")
    assert escape(scenario.camhs_worker.full_name) in own.content.decode()


def _lead_tick(client, involvement_id):  # type: ignore[no-untyped-def]
    return client.post(f"/involvements/{involvement_id}/update/", {"lead_professional": "on"})


def test_it_does_not_name_a_sensitive_lead_when_refusing_another(world, scenario) -> None:
    """A lead recorded on a sensitive involvement (before the rule, or by a feed) is not named
    to someone outside its service who tries to lead: the page says no lead is recorded, and
    the refusal says one is, by a service that cannot be named, and how to reach it."""
    with schema_context(world.brighton.schema_name):
        Involvement.objects.filter(person=scenario.ava).update(lead_professional=False)
        Involvement.objects.filter(person=scenario.ava, organisation=scenario.camhs).update(
            lead_professional=True
        )
        nurse_involvement = Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        )
    nurse = client_for(world, scenario.school_nurse)
    refused = _lead_tick(nurse, nurse_involvement.pk).content.decode()
    assert "cannot be named here" in refused and "Request contact" in refused
    assert escape(scenario.camhs_worker.full_name) not in refused and "Sussex CAMHS" not in refused
    with schema_context(world.brighton.schema_name):
        nurse_involvement.refresh_from_db()
        assert not nurse_involvement.lead_professional


def test_it_refuses_to_make_a_sensitive_involvement_the_lead(world, scenario) -> None:
    """The lead is the team's named point of contact, and a sensitive involvement is hidden
    from the team: it cannot lead, and nothing changes."""
    with schema_context(world.brighton.schema_name):
        Involvement.objects.filter(person=scenario.ava).update(lead_professional=False)
        camhs = Involvement.objects.get(person=scenario.ava, organisation=scenario.camhs)
    refused = _lead_tick(client_for(world, scenario.camhs_worker), camhs.pk).content.decode()
    assert "A sensitive involvement cannot be the lead professional" in refused
    with schema_context(world.brighton.schema_name):
        camhs.refresh_from_db()
        assert not camhs.lead_professional


def test_it_refuses_a_sensitive_lead_whoever_asks(world, scenario) -> None:
    """The rule is the service's, so it holds for every caller (page, API, a colleague)."""
    with schema_context(world.brighton.schema_name):
        Involvement.objects.filter(person=scenario.ava).update(lead_professional=False)
        Involvement.objects.filter(person=scenario.ava, organisation=scenario.camhs).update(
            lead_professional=True
        )
        with pytest.raises(ValidationError) as refused:
            involvement_add(
                actor=scenario.camhs_colleague,
                person=scenario.ava,
                practitioner=scenario.camhs_colleague.practitioner,
                role=RoleFactory(name="Family therapist"),
                lead_professional=True,
            )
    # A sensitive involvement cannot lead at all; that is said first.
    assert "A sensitive involvement cannot be the lead professional" in str(refused.value)


def test_it_numbers_the_sensitive_services_in_an_order_that_says_nothing(world, scenario) -> None:
    """The team's "ask a sensitive service" form offers "Sensitive service 1, 2…". Numbered
    by name, service 1 would always be the one first in the alphabet; numbered by each
    viewer's own references, it is not: here, for a colleague whose first is the later
    name, "service 1" reaches the later name."""
    with schema_context(world.brighton.schema_name):
        early = OrganisationFactory(
            name="Aardvark Sexual Health", agency_type="sexual_health", sensitive_service=True
        )
        late = OrganisationFactory(
            name="Zebra Drug Service", agency_type="substance_misuse", sensitive_service=True
        )
        for organisation in (early, late):
            InvolvementFactory(
                person=scenario.ava,
                practitioner=PractitionerFactory(organisation=organisation),
                role=RoleFactory(name="Keyworker"),
            )

        # Every sensitive service with Ava (the scenario's CAMHS among them), not only these two.
        hidden = set(
            Organisation.objects.filter(
                sensitive_service=True,
                involvements__person=scenario.ava,
                involvements__end_date__isnull=True,
            ).values_list("pk", flat=True)
        )

        def first_for(user) -> int:  # type: ignore[no-untyped-def]
            return min(
                hidden,
                key=lambda pk: contact_reference(
                    user_id=user.pk, person_id=scenario.ava.pk, organisation_id=pk
                ),
            )

        colleague = None
        for _ in range(40):  # each colleague has a one-in-three chance
            candidate = InvolvementFactory(
                person=scenario.ava,
                practitioner=PractitionerFactory(organisation=scenario.school),
                role=RoleFactory(name="Teaching assistant"),
            ).practitioner.user
            if first_for(candidate) == late.pk:
                colleague = candidate
                break
        assert colleague is not None
    client = client_for(world, colleague)
    sent = client.post(
        f"/people/{scenario.ava.pk}/messages/new/",
        {"form": "brokered", "service": "0", "message": "Ava asked me who she could talk to."},
    )
    assert sent.status_code == 302
    with schema_context(world.brighton.schema_name):
        assert ContactRequest.objects.get(requested_by=colleague).organisation == late


def test_a_service_marked_sensitive_later_is_hidden_where_it_was_already_involved(
    world, scenario
) -> None:
    """A trust imported from the NHS register starts as not sensitive; its worker is already
    on Ava's team, leading. Once the administrator marks it sensitive, the team sees only
    "a sensitive service is involved": no name, and no lead it cannot see."""
    with schema_context(world.brighton.schema_name):
        trust = OrganisationFactory(name="Weald Sexual Health Trust", agency_type="hospital")
        worker = PractitionerFactory(organisation=trust, job_title="Clinic nurse")
        Involvement.objects.filter(person=scenario.ava).update(lead_professional=False)
        InvolvementFactory(
            person=scenario.ava,
            practitioner=worker,
            role=RoleFactory(name="Clinic nurse"),
            lead_professional=True,
        )
    nurse = client_for(world, scenario.school_nurse)
    assert "Weald Sexual Health Trust" in nurse.get(f"/people/{scenario.ava.pk}/").content.decode()
    admin = client_for(world, scenario.admin)
    marked = admin.post(
        "/admin/set-up/sensitive-services/", {"organisation": trust.pk, "sensitive": "yes"}
    )
    assert marked.status_code == 302
    html = nurse.get(f"/people/{scenario.ava.pk}/").content.decode()
    assert "Weald Sexual Health Trust" not in html and escape(worker.user.full_name) not in html
    assert len(_references(html, scenario.ava.pk)) == 2  # CAMHS and the trust, unnamed
    with schema_context(world.brighton.schema_name):
        hidden = Involvement.objects.get(practitioner=worker)
        assert hidden.sensitive and not hidden.lead_professional
