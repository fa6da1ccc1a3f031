"""The council administrator's set-up: the checklist and its status, the register upload
pages and their report, the reviews, and the role list's defaults, renames and retirements.
Each with its "cannot reach it" case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from core.models import AuditEvent, CouncilPolicy, InvolvementRole, Organisation
from core.selectors import roles_active
from core.services import DEFAULT_ROLES
from tests.factories import OrganisationFactory
from tests.personas import sign_in

SAMPLES = Path(__file__).resolve().parents[2] / "core" / "registers_samples"


def _in(world, fn):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return fn()


def _events(world, action: str) -> int:  # type: ignore[no-untyped-def]
    """How many events of this kind the log holds (the browser test commits some)."""
    return _in(world, lambda: AuditEvent.objects.filter(action=action).count())  # type: ignore[no-any-return]


def _statuses(page: str) -> dict[str, str]:
    """Each task's label and status, as the GOV.UK task list shows them."""
    found = re.findall(
        r'govuk-task-list__link"[^>]*>([^<]+)</a>.*?govuk-task-list__status"[^>]*>(.*?)</div>',
        page,
        flags=re.S,
    )
    return {label: re.sub(r"<[^>]+>", "", status).strip() for label, status in found}


def _upload(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (SAMPLES / name).read_bytes(), content_type="text/csv")


def test_every_new_council_starts_with_the_default_roles(world, db) -> None:
    """Both councils were onboarded with the national default list; only the
    child-protection social worker is a child-protection role."""
    for council in (world.brighton, world.staffordshire):
        with schema_context(council.schema_name):
            roles = {r.name: r.child_protection for r in InvolvementRole.objects.all()}
        for name, child_protection in DEFAULT_ROLES:
            assert roles[name] == child_protection


def test_the_checklist_shows_what_is_done_and_what_is_left(world, db) -> None:
    """Computed from the data: roles and staff exist, schools and reviews do not yet."""
    admin = sign_in(world.brighton_admin)
    page = admin.get("/admin/set-up/").content.decode()
    statuses = _statuses(page)
    assert statuses["Import your schools"] == "Incomplete"
    assert statuses["Import GP practices and NHS trusts"] == "Incomplete"
    assert statuses["Check the list of roles"] == "Completed"
    assert statuses["Invite your staff"] == "Completed"
    assert statuses["Review which services are sensitive"] == "Incomplete"
    assert statuses["Agree data sharing with other councils"] == "Incomplete"
    assert len(statuses) == 8
    assert "You have completed 2 of 8 tasks" in page
    home = admin.get("/").content.decode()
    assert "Patchwork is not set up yet" in home and 'href="/admin/set-up/"' in home


def test_uploading_the_schools_extract_imports_and_shows_the_report(world, db) -> None:
    """The upload page imports the council's schools, shows the counts and every change
    as GOV.UK tables, remembers the local authority code and ticks off the task."""
    imports_before = _events(world, "register_imported")
    admin = sign_in(world.brighton_admin)
    page = admin.get("/admin/set-up/schools/").content.decode()
    assert 'type="file"' in page and "govuk-file-upload" in page
    done = admin.post(
        "/admin/set-up/schools/",
        {"area": "846", "full_extract": "on", "file": _upload("gias_edubasealldata.csv")},
    )
    text = done.content.decode()
    assert done.status_code == 200 and "What the import did" in text
    assert re.search(r"Added</dt><dd[^>]*>6<", text)
    assert "Palmeira Gardens Infant School" in text  # not added: closed already
    assert "govuk-table" in text and "govuk-summary-list" in text
    assert _in(world, lambda: Organisation.objects.filter(register="gias").count()) == 6
    assert _in(world, lambda: CouncilPolicy.current().gias_local_authority_codes) == "846"
    assert 'value="846"' in admin.get("/admin/set-up/schools/").content.decode()
    statuses = _statuses(admin.get("/admin/set-up/").content.decode())
    assert statuses["Import your schools"] == "Completed"
    again = admin.post(
        "/admin/set-up/schools/",
        {"area": "846", "full_extract": "on", "file": _upload("gias_edubasealldata.csv")},
    ).content.decode()
    assert re.search(r"Unchanged</dt><dd[^>]*>6<", again)
    assert _in(world, lambda: Organisation.objects.filter(register="gias").count()) == 6
    assert _events(world, "register_imported") == imports_before + 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"area": "846"}, "Choose the file to upload"),
        ({"area": "84", "file": "gias_edubasealldata.csv"}, "84 is not a local authority code"),
        ({"area": "", "file": "gias_edubasealldata.csv"}, "Enter your council&#x27;s local"),
        ({"area": "846", "file": "ods_epraccur.csv"}, "it has no columns called URN"),
        ({"area": "999", "file": "gias_edubasealldata.csv"}, "No school in the file is in"),
    ],
)
def test_a_bad_upload_is_refused_with_an_error_summary(world, db, data, message) -> None:
    """Each problem is named in the error summary and beside its field; nothing changes."""
    admin = sign_in(world.brighton_admin)
    if "file" in data:
        data = {**data, "file": _upload(data["file"])}
    page = admin.post("/admin/set-up/schools/", data).content.decode()
    assert "govuk-error-summary" in page and message in page
    assert page.count(message) == 2  # in the summary and at the field
    assert not _in(world, lambda: Organisation.objects.filter(register="gias").exists())


def test_nhs_files_need_to_say_which_file_they_are(world, db) -> None:
    """The NHS page asks which file it is, and imports GP practices by postcode district."""
    admin = sign_in(world.brighton_admin)
    refused = admin.post(
        "/admin/set-up/nhs/", {"area": "BN1 BN2 BN3", "file": _upload("ods_epraccur.csv")}
    ).content.decode()
    assert "Choose which file you are uploading" in refused
    done = admin.post(
        "/admin/set-up/nhs/",
        {
            "register": "ods_gp",
            "area": "bn1 bn2 bn3",
            "full_extract": "on",
            "file": _upload("ods_epraccur.csv"),
        },
    ).content.decode()
    assert re.search(r"Added</dt><dd[^>]*>3<", done)
    assert _in(world, lambda: CouncilPolicy.current().ods_postcode_districts) == "BN1 BN2 BN3"


def test_the_reviews_tick_off_their_tasks_and_are_audited(world, db) -> None:
    """'These settings are right' and 'I have reviewed...' mark their steps done."""
    reviews_before = _events(world, "policy_reviewed")
    admin = sign_in(world.brighton_admin)
    assert (
        "Practitioners confirm each involvement every"
        in admin.get("/admin/set-up/policy/").content.decode()
    )
    assert admin.post("/admin/set-up/reviewed/policy/").status_code == 302
    assert admin.post("/admin/set-up/reviewed/sensitive-services/").status_code == 302
    assert admin.post("/admin/set-up/reviewed/everything/").status_code == 404
    statuses = _statuses(admin.get("/admin/set-up/").content.decode())
    assert statuses["Check how long records are kept"] == "Completed"
    assert statuses["Review which services are sensitive"] == "Completed"
    assert _events(world, "policy_reviewed") == reviews_before + 1


def test_an_administrator_marks_a_service_sensitive(world, db) -> None:
    """A trust can be marked sensitive; a mental health service can never be unmarked."""
    trust = _in(world, lambda: OrganisationFactory(name="Weald Trust", agency_type="hospital"))
    camhs = _in(
        world,
        lambda: OrganisationFactory(
            name="Weald CAMHS", agency_type="mental_health", sensitive_service=True
        ),
    )
    admin = sign_in(world.brighton_admin)
    assert "Weald Trust" in admin.get("/admin/set-up/sensitive-services/").content.decode()
    admin.post("/admin/set-up/sensitive-services/", {"organisation": trust.pk, "sensitive": "yes"})
    refused = admin.post(
        "/admin/set-up/sensitive-services/",
        {"organisation": camhs.pk, "sensitive": "no"},
        follow=True,
    ).content.decode()
    assert "it is always sensitive" in refused
    assert _in(world, lambda: Organisation.objects.get(pk=trust.pk).sensitive_service)
    assert _in(world, lambda: Organisation.objects.get(pk=camhs.pk).sensitive_service)
    for wrong in ("999999", "x", ""):
        missing = admin.post("/admin/set-up/sensitive-services/", {"organisation": wrong})
        assert missing.status_code == 404


def test_the_default_roles_are_added_back_only_where_missing(world, db) -> None:
    """'Add the default roles' adds the missing ones once; a second press adds none."""
    _in(world, lambda: InvolvementRole.objects.filter(name__in=["GP", "Midwife"]).delete())
    admin = sign_in(world.brighton_admin)
    assert "Add the default roles" in admin.get("/admin/roles/").content.decode()
    first = admin.post("/admin/roles/defaults/", follow=True).content.decode()
    assert "2 default roles are added" in first
    second = admin.post("/admin/roles/defaults/", follow=True).content.decode()
    assert "already has every default role" in second
    assert _in(world, lambda: InvolvementRole.objects.filter(name="GP").count()) == 1


def test_an_administrator_renames_and_retires_a_role(world, db) -> None:
    """A retired role is no longer offered; a name already used is refused."""
    role = _in(world, lambda: InvolvementRole.objects.get(name="Health visitor"))
    changes_before = _events(world, "role_changed")
    admin = sign_in(world.brighton_admin)
    url = f"/admin/roles/{role.pk}/"
    assert admin.post(url, {"name": "Health visitor (0 to 5)"}).status_code == 302
    renamed = _in(world, lambda: InvolvementRole.objects.get(pk=role.pk))
    assert renamed.name == "Health visitor (0 to 5)" and not renamed.active
    assert _in(world, lambda: not roles_active().filter(pk=role.pk).exists())
    taken = admin.post(url, {"name": "school nurse", "active": "on"}).content.decode()
    assert "school nurse is already on the list of roles" in taken
    assert _events(world, "role_changed") == changes_before + 1
    assert admin.get("/admin/roles/999999/").status_code == 404


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/admin/set-up/"),
        ("get", "/admin/set-up/schools/"),
        ("get", "/admin/set-up/nhs/"),
        ("get", "/admin/set-up/policy/"),
        ("get", "/admin/set-up/sensitive-services/"),
        ("post", "/admin/set-up/reviewed/policy/"),
        ("post", "/admin/roles/defaults/"),
        ("get", "/admin/roles/1/"),
    ],
)
def test_practitioners_cannot_reach_the_set_up_pages(world, db, method, url) -> None:
    """Only the council's administrators set it up."""
    social_worker = sign_in(world.brighton_social_worker)
    assert getattr(social_worker, method)(url).status_code == 403
