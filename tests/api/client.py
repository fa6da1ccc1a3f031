"""Calling a council's API as a named person: a JSON client, the council's host, and a token
issued there."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from core.api.auth import api_token_issue


class ApiClient:
    """Calls a council's API with a bearer token (or a signed-in session), JSON both ways."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, path: str, **extra: Any) -> Any:
        return self.client.get(path, **extra)

    def post(self, path: str, data: Any = None, **extra: Any) -> Any:
        body = json.dumps(data if data is not None else {})
        return self.client.post(path, body, content_type="application/json", **extra)

    def patch(self, path: str, data: Any = None, **extra: Any) -> Any:
        body = json.dumps(data if data is not None else {})
        return self.client.patch(path, body, content_type="application/json", **extra)


def host_of(council: Any) -> str:
    return council.get_primary_domain().domain


def token_for(user: User, council: Any) -> str:
    with schema_context(council.schema_name):
        return api_token_issue(user=user).token
