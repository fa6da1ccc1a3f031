"""A limited client shows in the platform's /metrics scrape (decision 0011)."""

from __future__ import annotations

from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-for-tests-0123456789abcdef"


def limited_count(limit: str) -> float:
    response = Client(HTTP_HOST="localhost").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == "patchwork_rate_limited_total" and sample.labels == {"limit": limit}
    )


@override_settings(METRICS_TOKEN=TOKEN)
def test_a_limited_sign_in_is_counted_in_the_scrape(world, db, production_limits) -> None:
    """Twenty failures from one address, then two refused attempts: two more 429s counted."""
    host = world.brighton_school_nurse.host
    client = Client(HTTP_HOST=host, REMOTE_ADDR="198.51.100.200")
    for n in range(20):
        client.post("/sign-in/", {"email": f"m{n}@brighton.test", "password": "wrong-password-1"})
    before = limited_count("sign_in_address")
    for _ in range(2):
        response = client.post("/sign-in/", {"email": "m@brighton.test", "password": "wrong-1"})
        assert response.status_code == 429
    assert limited_count("sign_in_address") == before + 2


def test_a_limited_address_is_logged_once_not_per_refusal(
    world, db, production_limits, caplog
) -> None:
    """Ten refusals after the address's twenty failures: one short warning naming the limit
    and the address."""
    client = Client(HTTP_HOST=world.brighton_school_nurse.host, REMOTE_ADDR="198.51.100.201")
    for n in range(30):
        client.post("/sign-in/", {"email": f"l{n}@brighton.test", "password": "wrong-password-1"})
    lines = [r.getMessage() for r in caplog.records if r.name == "accounts.ratelimits"]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Rate limit sign_in_address reached by 198.51.100.201: refused for")
