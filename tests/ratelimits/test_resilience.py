"""The lockout records the client address the limits count, and a rate-limit cache that does
not answer lets people in rather than stopping every sign-in (decision 0011)."""

from __future__ import annotations

import logging

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, override_settings
from django_tenants.utils import schema_context

from tests.api.client import ApiClient, host_of, token_for

NOWHERE = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}


def test_the_lockout_records_the_client_behind_the_proxy(world, db) -> None:
    """A failure through nginx (127.0.0.1) is recorded against the forwarded address."""
    persona = world.brighton_social_worker
    Client(HTTP_HOST=persona.host, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.33").post(
        "/sign-in/", {"email": persona.email, "password": "wrong-password-1"}
    )
    with schema_context(persona.schema_name):
        attempt = AccessAttempt.objects.filter(username=persona.email).latest("attempt_time")
        assert attempt.ip_address == "192.0.2.33"
        AccessAttempt.objects.filter(username=persona.email).delete()


@pytest.mark.parametrize("ignore_exceptions", [False, True])
def test_a_silent_cache_lets_sign_in_and_the_api_work(  # type: ignore[no-untyped-def]
    world, scenario, production_limits, caplog, ignore_exceptions
) -> None:
    """Counters on a Redis port nobody listens on (django-redis raising, or answering
    nothing): sign-in and the API still answer rather than refuse everyone."""
    persona = world.brighton_school_nurse
    nowhere = {**NOWHERE, "OPTIONS": {"IGNORE_EXCEPTIONS": ignore_exceptions}}
    with override_settings(CACHES={**settings.CACHES, "ratelimit": nowhere}):
        client = Client(HTTP_HOST=persona.host)
        response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
        assert response.status_code == 302
        api = ApiClient(
            Client(
                HTTP_HOST=host_of(world.brighton),
                HTTP_AUTHORIZATION=f"Bearer {token_for(scenario.social_worker, world.brighton)}",
            )
        )
        assert api.get("/api/v1/roles").status_code == 200
    if not ignore_exceptions:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("not checked" in line and "sign_in" in line for line in warnings), warnings
        assert any("Rate limit api not checked" in line for line in warnings), warnings
