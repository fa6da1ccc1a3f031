"""Fixtures for the API tests: clients that call a council's API as a named person (see
tests/api/client.py), and the audit events a call wrote."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import AuditEvent
from tests.api.client import ApiClient, host_of, token_for


@pytest.fixture
def api(world) -> Callable[..., ApiClient]:  # type: ignore[no-untyped-def]
    """`api(user)`: a client at Brighton with a token issued to `user` there."""

    def make(user: User, council: Any = None, token: str | None = None) -> ApiClient:
        council = council or world.brighton
        token = token or token_for(user, world.brighton)
        return ApiClient(Client(HTTP_HOST=host_of(council), HTTP_AUTHORIZATION=f"Bearer {token}"))

    return make


class AuditLog:
    """The audit events a council has written since the log was opened."""

    def __init__(self, schema_name: str) -> None:
        self.schema_name = schema_name
        with schema_context(schema_name):
            self.start = (
                AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
            )

    def since(self) -> list[tuple[str, int | None, int | None]]:
        """(action, actor id, person id) of each new event, oldest first."""
        with schema_context(self.schema_name):
            return list(
                AuditEvent.objects.filter(id__gt=self.start)
                .order_by("id")
                .values_list("action", "actor_id", "person_id")
            )


@pytest.fixture
def audit(world) -> Callable[[], AuditLog]:  # type: ignore[no-untyped-def]
    return lambda: AuditLog(world.brighton.schema_name)
