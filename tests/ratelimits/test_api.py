"""The API and FHIR are rate limited per caller (DRF's throttle, decision 0011): 429 with
Retry-After, in the API's own error shape."""

from __future__ import annotations

from django.test import Client, override_settings

from tests.api.client import ApiClient, host_of, token_for


def api(user, world, token=None) -> ApiClient:  # type: ignore[no-untyped-def]
    token = token or token_for(user, world.brighton)
    return ApiClient(
        Client(HTTP_HOST=host_of(world.brighton), HTTP_AUTHORIZATION=f"Bearer {token}")
    )


@override_settings(RATE_LIMIT_API="5/m")
def test_a_token_is_limited_and_another_callers_is_not(scenario, world, production_limits) -> None:
    """The sixth call in a minute is refused with the API's {"detail": ...} and Retry-After;
    a fresh token for the same person does not reset it; a colleague's token still works."""
    social_worker = api(scenario.social_worker, world)
    for _ in range(5):
        assert social_worker.get("/api/v1/roles").status_code == 200
    refused = social_worker.get("/api/v1/roles")
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert 1 <= wait <= 60
    assert refused.json() == {"detail": f"Too many requests: wait {wait} seconds, then try again"}
    again = api(
        scenario.social_worker, world, token=token_for(scenario.social_worker, world.brighton)
    )
    assert again.get("/api/v1/roles").status_code == 429
    assert api(scenario.school_nurse, world).get("/api/v1/roles").status_code == 200


@override_settings(RATE_LIMIT_API="2/m")
def test_fhir_answers_a_limited_caller_with_an_operation_outcome(
    scenario, world, production_limits
) -> None:
    """The same limit on FHIR, answered in FHIR's own error shape."""
    token = token_for(scenario.social_worker, world.brighton)
    client = Client(HTTP_HOST=host_of(world.brighton), HTTP_AUTHORIZATION=f"Bearer {token}")
    path = f"/fhir/CareTeam?subject=Patient/{scenario.ava.pk}"
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 200
    refused = client.get(path)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"
