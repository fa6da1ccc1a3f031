"""GET /api/v1/audit/checkpoints/latest (a council's administrators and IG officers) and
/federation/checkpoints/<code>/ on the operator console: the latest signed checkpoint, which
anyone holding the council's published key can check."""

from __future__ import annotations

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.test import Client
from django_tenants.utils import schema_context

from core.audit import audit_record
from federation import protocol
from federation.checkpoints import audit_checkpoint_take
from tests.api.client import host_of
from tests.personas import sign_in

LATEST = "/api/v1/audit/checkpoints/latest"


@pytest.fixture
def checkpoint(world, db):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        audit_record(actor=None, action="search", detail={"result_ids": []})
    return audit_checkpoint_take(council=world.brighton)


def _check_with_published_key(client: Client, body: dict) -> None:  # type: ignore[type-arg]
    """Verify as an outsider would: the key from the council's key document, by id."""
    keys = client.get("/.well-known/patchwork/keys").json()["keys"]
    public = next(k["public_key"] for k in keys if k["key_id"] == body["key_id"])
    document = {k: v for k, v in body["checkpoint"].items() if k != "signatures"}
    Ed25519PublicKey.from_public_bytes(protocol.unb64(public)).verify(
        protocol.unb64(body["signature"]), rfc8785.dumps(document)
    )


def test_the_council_administrator_gets_the_latest_signed_checkpoint(world, checkpoint) -> None:
    """200 with the document, its signature and key id; it verifies with the published key."""
    client = sign_in(world.brighton_admin)
    response = client.get(LATEST)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["checkpoint"] == checkpoint.document
    assert body["checkpoint"]["sequence"] == 1 and body["signer"] == "council:E06000043"
    assert response["Cache-Control"] == "no-store"
    _check_with_published_key(client, body)


def test_before_any_checkpoint_it_is_404_in_words(world, db) -> None:
    response = sign_in(world.brighton_admin).get(LATEST)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found"}


def test_a_practitioner_may_not_fetch_it(world, scenario, checkpoint, api) -> None:
    """A social worker's token is refused with the reason."""
    response = api(scenario.social_worker).get(LATEST)
    assert response.status_code == 403
    assert "administrators and information governance officers" in response.json()["detail"]


def test_without_signing_in_it_is_401(world, checkpoint) -> None:
    response = Client(HTTP_HOST=host_of(world.brighton)).get(LATEST)
    assert response.status_code == 401


def test_a_brighton_session_does_not_reach_staffordshire(world, db) -> None:
    """Sessions belong to one council: at Staffordshire the Brighton admin is nobody."""
    with schema_context(world.staffordshire.schema_name):
        audit_record(actor=None, action="search", detail={"result_ids": []})
    audit_checkpoint_take(council=world.staffordshire)
    client = sign_in(world.brighton_admin)
    response = client.get(LATEST, HTTP_HOST=host_of(world.staffordshire))
    assert response.status_code == 401


def test_the_operator_gets_any_councils_checkpoint(world, checkpoint) -> None:
    """On the operator console, by ONS code; an unknown code is 404."""
    client = sign_in(world.operator)
    response = client.get(f"/federation/checkpoints/{world.brighton.code}/")
    assert response.status_code == 200
    assert response.json()["checkpoint"] == checkpoint.document
    assert client.get("/federation/checkpoints/E06000099/").status_code == 404
    _check_with_published_key(Client(HTTP_HOST=host_of(world.brighton)), response.json())


def test_the_operator_endpoint_sends_anyone_else_to_sign_in(world, checkpoint) -> None:
    """Only operators sign in on the platform's host; anyone else is sent to sign in."""
    response = Client(HTTP_HOST="localhost").get(f"/federation/checkpoints/{world.brighton.code}/")
    assert response.status_code == 302 and "/sign-in/" in response["Location"]


def test_the_endpoint_is_in_the_openapi_schema(world, db) -> None:
    response = Client(HTTP_HOST=host_of(world.brighton)).get(
        "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    operation = response.json()["paths"][LATEST]["get"]
    assert operation["operationId"] == "audit_checkpoint_latest"
    assert set(operation["responses"]) >= {"200", "403", "404"}
