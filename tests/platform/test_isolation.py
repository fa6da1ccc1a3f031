"""Tenant boundaries, tested both ways: Brighton and Staffordshire never see each other."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django_tenants.utils import schema_context

from core.models import Organisation
from tests.personas import sign_in

DIRECTIONS = [("brighton", "staffordshire"), ("staffordshire", "brighton")]


def _admin_of(world, name):  # type: ignore[no-untyped-def]
    if name == "brighton":
        return world.brighton_admin
    from tests.personas import make_persona

    return make_persona(world.staffordshire, "admin@staffs.test", "Stu Admin", "council_admin")


def test_it_refuses_a_brighton_user_at_staffordshire_and_back(world, db) -> None:
    """The same email and password only work at the council whose user it is."""
    for persona, other_host in [
        (world.brighton_social_worker, world.staffordshire_gp.host),
        (world.staffordshire_gp, world.brighton_social_worker.host),
    ]:
        client = Client(HTTP_HOST=other_host)
        response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
        assert response.status_code == 200
        assert b"email address or password is not right" in response.content
        assert "patchwork_pending_user" not in client.session


@pytest.mark.parametrize(("home", "other"), DIRECTIONS)
def test_it_answers_404_for_an_object_of_the_other_council(world, db, home, other) -> None:
    """An organisation id that exists only in the other council is not found here."""
    admin = _admin_of(world, home)
    other_council = getattr(world, other)
    with schema_context(getattr(world, home).schema_name):
        Organisation.objects.create(name=f"{home} school", agency_type="school")
        local_ids = set(Organisation.objects.values_list("id", flat=True))
    with schema_context(other_council.schema_name):
        # Sequences are per schema, so ids overlap: make one that only the other council has.
        foreign = Organisation.objects.create(name=f"{other} org", agency_type="housing")
        while foreign.id <= max(local_ids):
            foreign = Organisation.objects.create(
                name=f"{other} org {foreign.id}", agency_type="housing"
            )
    assert foreign.id not in local_ids
    client = sign_in(admin)
    assert client.get(f"/admin/organisations/{foreign.id}/").status_code == 404
    own = next(iter(local_ids))
    assert client.get(f"/admin/organisations/{own}/").status_code == 200


def test_it_refuses_a_session_cookie_from_the_other_council(world, db) -> None:
    """A signed-in Brighton session cookie means nothing at Staffordshire, and back."""
    for persona, other_host in [
        (world.brighton_social_worker, world.staffordshire_gp.host),
        (world.staffordshire_gp, world.brighton_social_worker.host),
    ]:
        signed_in = sign_in(persona)
        assert signed_in.get("/").status_code == 200
        stolen = signed_in.cookies["patchwork_session"].value
        intruder = Client(HTTP_HOST=other_host)
        intruder.cookies["patchwork_session"] = stolen
        response = intruder.get("/")
        assert response.status_code == 302
        assert response["Location"].startswith("/sign-in/")


def test_it_keeps_cached_values_apart(world, db) -> None:
    """A value cached while serving one council is not read while serving the other."""
    with schema_context(world.brighton.schema_name):
        cache.set("network:child-1", "brighton's answer")
    with schema_context(world.staffordshire.schema_name):
        assert cache.get("network:child-1") is None
        cache.set("network:child-1", "staffordshire's answer")
    with schema_context(world.brighton.schema_name):
        assert cache.get("network:child-1") == "brighton's answer"
        cache.delete("network:child-1")
    with schema_context(world.staffordshire.schema_name):
        cache.delete("network:child-1")


def test_it_serves_no_council_at_an_unknown_host(world, db) -> None:
    """A host that is no council's address gets a clear 404, not another council's pages."""
    response = Client(HTTP_HOST="nowhere.localhost").get("/sign-in/")
    assert response.status_code == 404
    assert b"no council at this address" in response.content


def test_it_keeps_council_users_out_of_the_operator_console(world, db) -> None:
    """A council administrator's credentials do not exist on the platform host."""
    client = Client(HTTP_HOST="localhost")
    response = client.post(
        "/sign-in/",
        {"email": world.brighton_admin.email, "password": world.brighton_admin.password},
    )
    assert b"email address or password is not right" in response.content
    assert client.get("/").status_code == 302
