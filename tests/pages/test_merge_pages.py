"""The administrator's merge pages: find both records, check, merge, reverse; the merged-away
record's page leads to the kept one; no one else reaches the pages."""

from __future__ import annotations

from datetime import date

from django_tenants.utils import schema_context

from core.models import AuditEvent, Involvement, Person, PersonMerge
from tests.factories import InvolvementFactory, PersonFactory, RoleFactory
from tests.personas import client_for


def test_an_administrator_merges_two_records_and_reverses_the_merge(world, scenario) -> None:
    """Find Ava, find her duplicate, check both side by side, merge; the duplicate's page
    leads her lead professional to Ava's; then "Reverse this merge" puts it back."""
    with schema_context(world.brighton.schema_name):
        duplicate = PersonFactory(
            given_name="Ava", family_name="Smith", date_of_birth=date(2015, 3, 14), nhs_number=None
        )
        InvolvementFactory(
            person=duplicate,
            practitioner=scenario.teacher.practitioner,
            role=RoleFactory(name="Class teacher"),
        )
    admin = client_for(world, scenario.admin)
    found = admin.get("/admin/merges/new/", {"nhs_number": "943 476 5919"}).content.decode()
    assert f"/admin/merges/new/{scenario.ava.pk}/" in found
    other = admin.get(
        f"/admin/merges/new/{scenario.ava.pk}/",
        {"family_name": "Smith", "date_of_birth_day": "14", "date_of_birth_month": "3"}
        | {"date_of_birth_year": "2015"},
    ).content.decode()
    check_url = f"/admin/merges/new/{scenario.ava.pk}/{duplicate.pk}/"
    assert check_url in other
    check = admin.get(check_url).content.decode()
    assert "Check before merging" in check and "govuk-summary-list" in check
    assert "Merge the records" in check
    with schema_context(world.brighton.schema_name):
        compared = AuditEvent.objects.filter(action="merge_compared").latest("id")
        assert (compared.person_id, compared.detail) == (
            scenario.ava.pk,
            {"other_id": duplicate.pk},
        )
    done = admin.post(check_url)
    assert done.status_code == 302
    with schema_context(world.brighton.schema_name):
        merge = PersonMerge.objects.get()
        assert Involvement.objects.get(practitioner=scenario.teacher.practitioner).person_id == (
            scenario.ava.pk
        )
    assert done["Location"] == f"/admin/merges/{merge.pk}/"
    assert "Reverse this merge" in admin.get("/admin/merges/").content.decode()

    lead = client_for(world, scenario.social_worker)
    moved = lead.get(f"/people/{duplicate.pk}/")
    assert (moved.status_code, moved["Location"]) == (302, f"/people/{scenario.ava.pk}/")
    assert "Class teacher" in lead.get(moved["Location"]).content.decode()
    # Someone who may not know Ava exists learns nothing from the old record's address.
    stranger = client_for(world, scenario.camhs_colleague)
    assert stranger.get(f"/people/{duplicate.pk}/").status_code == 404

    assert admin.post(f"/admin/merges/{merge.pk}/").status_code == 302
    with schema_context(world.brighton.schema_name):
        assert Person.objects.get(pk=duplicate.pk).merged_into_id is None
        assert Involvement.objects.get(practitioner=scenario.teacher.practitioner).person_id == (
            duplicate.pk
        )
    assert "Reversed" in admin.get("/admin/merges/").content.decode()


def test_the_check_page_says_why_two_records_cannot_be_merged(world, scenario) -> None:
    """Two NHS numbers: the page says so and offers no button; posting changes nothing."""
    with schema_context(world.brighton.schema_name):
        other = PersonFactory(nhs_number="4010232137")
    admin = client_for(world, scenario.admin)
    url = f"/admin/merges/new/{scenario.ava.pk}/{other.pk}/"
    page = admin.get(url).content.decode()
    assert "different NHS numbers" in page and "Merge the records" not in page
    assert admin.post(url).status_code == 200
    with schema_context(world.brighton.schema_name):
        assert not PersonMerge.objects.exists()


def test_the_check_page_warns_that_the_result_is_shielded(world, scenario) -> None:
    """Zed is shielded: merging his duplicate with him says the result will be shielded."""
    with schema_context(world.brighton.schema_name):
        duplicate = PersonFactory(given_name="Zed", family_name="Hollis", nhs_number=None)
    page = client_for(world, scenario.admin).get(
        f"/admin/merges/new/{duplicate.pk}/{scenario.zed.pk}/"
    )
    assert "the merged record will be shielded" in page.content.decode()


def test_no_one_but_an_administrator_reaches_the_merge_pages(world, scenario) -> None:
    """Ava's lead professional gets a 403 on every merge page."""
    client = client_for(world, scenario.social_worker)
    for url in ("/admin/merges/", "/admin/merges/new/", f"/admin/merges/new/{scenario.ava.pk}/"):
        assert client.get(url).status_code == 403
