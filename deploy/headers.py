"""Response headers the application owns on every response it makes (docs/operations.md,
"Security headers: which layer sends what").

Nearly every page shows a person, a search or a practitioner's details, so nothing the app
answers may be kept by a browser's or a proxy's cache unless its view says so itself (as the
council card does, `federation.api`). Static files never pass through here in production
(nginx serves them), and WhiteNoise's own answers always carry a Cache-Control of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import csp.middleware
from csp.constants import HEADER
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
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


class CSPMiddleware(csp.middleware.CSPMiddleware):
    """django-csp's middleware, with the policy of an ordinary answer built once per process
    rather than on every response (its `build_policy` was 2 % of a person page's CPU).
    Ordinary: no nonce asked for, no view decorator's own policy, no report-only policy or
    excluded paths configured, not DEBUG. Anything else goes to django-csp as it is."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
        if (
            settings.DEBUG
            or getattr(request, "_csp_nonce", None) is not None
            or HEADER in response
            or any(hasattr(response, name) for name in _PER_RESPONSE)
            or getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            or policy.get("EXCLUDE_URL_PREFIXES")
        ):
            return super().process_response(request, response)
        header = fixed_policy()
        if header:
            response[HEADER] = header
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = csp.middleware.CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response


# What a view's decorators (csp.decorators) put on a response to change or drop its policy.
_PER_RESPONSE = tuple(
    f"_csp_{kind}{suffix}"
    for kind in ("config", "update", "replace", "exempt")
    for suffix in ("", "_ro")
)


@lru_cache(maxsize=1)
def fixed_policy() -> str:
    """The Content-Security-Policy of every ordinary answer, as django-csp builds it."""
    return build_policy()


@receiver(setting_changed)
def _policy_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        fixed_policy.cache_clear()
