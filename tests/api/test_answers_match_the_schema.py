"""Real answers checked against the schema the API publishes, with schemathesis's own
validator: a network with a sensitive service in it (each entry exactly one of the two
shapes, never both) and a current involvement (its empty end_reason is in the schema)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import schemathesis

from core.models import Involvement


def _published(scenario, api) -> Any:  # type: ignore[no-untyped-def]
    schema = api(scenario.social_worker).get("/api/v1/schema/?format=json").json()
    return schemathesis.openapi.from_dict(schema)


def _as_httpx(method: str, path: str, response: Any) -> httpx.Response:
    """The Django test client's answer, as schemathesis reads an answer over HTTP."""
    answer = httpx.Response(
        status_code=response.status_code,
        headers=dict(response.items()),
        content=response.content,
        request=httpx.Request(method, f"http://testserver{path}"),
    )
    answer.elapsed = timedelta(0)
    return answer


def test_a_network_with_a_sensitive_service_matches_the_schema(scenario, api) -> None:
    """Ava's network: team members in full and CAMHS masked, each entry one shape only."""
    path = f"/api/v1/people/{scenario.ava.pk}/network"
    response = api(scenario.social_worker).get(path)
    assert response.status_code == 200
    entries = response.json()["current"]
    assert any(entry.get("sensitive_service") for entry in entries)
    assert any("involvement_id" in entry for entry in entries)
    operation = _published(scenario, api)["/api/v1/people/{person_id}/network"]["GET"]
    assert operation.is_valid_response(_as_httpx("GET", path, response))


def test_a_current_involvement_with_no_end_reason_matches_the_schema(scenario, api) -> None:
    """end_reason is "" while an involvement is current: the schema allows it."""
    involvement = Involvement.objects.get(
        person=scenario.ava, practitioner__user=scenario.school_nurse
    )
    path = f"/api/v1/involvements/{involvement.pk}/confirm"
    response = api(scenario.school_nurse).post(path)
    assert response.status_code == 200
    assert response.json()["end_reason"] == ""
    operation = _published(scenario, api)["/api/v1/involvements/{involvement_id}/confirm"]["POST"]
    assert operation.is_valid_response(_as_httpx("POST", path, response))
