"""The OpenAPI 3 schema: generated without a warning, valid, and published."""

from __future__ import annotations

import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS

from tests.api.client import host_of


def test_the_schema_generates_without_warnings_and_validates(tmp_path) -> None:
    """`patchwork spectacular --validate --fail-on-warn` succeeds."""
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/people/{person_id}/network" in schema["paths"]
    assert "/fhir/CareTeam" in schema["paths"]


def test_the_schema_is_published_and_documents_both_ways_in(world, db) -> None:
    """Anyone may read the schema; it names the bearer token and the session."""
    response = Client(HTTP_HOST=host_of(world.brighton)).get(
        "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert response.status_code == 200
    schema = response.json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerToken"]["scheme"] == "bearer"
    assert schemes["session"]["in"] == "cookie"
    token_security = schema["paths"]["/api/v1/tokens/"]["post"]["security"]
    assert token_security == [{"session": []}]
