"""Response headers the application owns on every response it makes (docs/operations.md,
"Security headers: which layer sends what").

Nearly every page shows a person, a search or a practitioner's details, so nothing the app
answers may be kept by a browser's or a proxy's cache unless its view says so itself (as the
council card does, `federation.api`). Static files never pass through here in production
(nginx serves them), and WhiteNoise's own answers always carry a Cache-Control of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase


class ResponseHeadersMiddleware:
    """`Cache-Control: no-store` unless the view set a Cache-Control of its own, and the
    Permissions-Policy that turns off browser features Patchwork never uses."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.permissions_policy = ", ".join(
            f"{feature}=({' '.join(allowed)})"
            for feature, allowed in settings.PERMISSIONS_POLICY.items()
        )

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        if self.permissions_policy:
            response.headers.setdefault("Permissions-Policy", self.permissions_policy)
        return response
