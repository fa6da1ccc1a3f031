"""Routing by host: the platform domain serves the operator console from the public schema;
`<slug>.<platform domain>` serves that council from its own schema; anything else is 404."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.shortcuts import render
from django_tenants.middleware.main import TenantMainMiddleware
from prometheus_client import Counter

from tenants.db import models_from_sql, tenant_connection
from tenants.models import Council, Domain
from tenants.selectors import council_behind

log = logging.getLogger(__name__)

# Tables named with their schema: routing reads them whatever the search path is now, so a
# request to the council the connection was already set for changes nothing.
COUNCIL_BY_HOST = (
    "SELECT c.* FROM public.tenants_council c JOIN public.tenants_domain d "
    "ON d.tenant_id = c.id WHERE d.domain = %s"
)


class CouncilRoutingMiddleware(TenantMainMiddleware):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        """django-tenants' routing, without first switching the connection to the public
        schema (one `SET search_path` per request saved; see tenants.postgresql_backend)."""
        try:
            hostname = self.hostname_from_request(request)
        except DisallowedHost:
            return HttpResponseNotFound()
        try:
            council = self.get_tenant(Domain, hostname)
        except Domain.DoesNotExist:
            return self.no_tenant_found(request, hostname)
        council.domain_url = hostname
        request.tenant = council  # type: ignore[attr-defined]
        tenant_connection().set_tenant(council)
        self.setup_url_routing(request)
        return None

    def get_tenant(self, domain_model: type[Domain], hostname: str) -> Council:
        if hostname == settings.PLATFORM_DOMAIN:
            # The platform itself is not a council and has no row: an unsaved instance
            # carries the public schema name for django-tenants.
            return Council(schema_name="public", name="Patchwork platform", code="", slug="")
        # Every request starts here: one plain statement rather than the ORM's join.
        found = list(models_from_sql(Council, COUNCIL_BY_HOST, [hostname]))
        if not found:
            raise domain_model.DoesNotExist(hostname)
        return found[0]

    def no_tenant_found(self, request: HttpRequest, hostname: str) -> HttpResponse:
        tenant_connection().set_schema_to_public()
        return render(request, "tenants/no_council.html", {"hostname": hostname}, status=404)


class CouncilServingMiddleware:
    """A council that cannot serve answers 503 on its own while every other council serves:
    a suspended council with the "suspended" page (no sign-in; open sessions are useless),
    and a council whose schema lacks a migration the code has with the "being updated" page
    (or JSON for the API, FHIR and federation), until `migrate_platform` reaches it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        council = getattr(request, "tenant", None)
        if not isinstance(council, Council) or council.schema_name == "public":
            return self.get_response(request)
        if council.is_suspended:
            UNAVAILABLE.labels("suspended").inc()
            return render(request, "tenants/suspended.html", {"council": council}, status=503)
        pending = council_behind(council.schema_name)
        if pending:
            UNAVAILABLE.labels("migrations_pending").inc()
            _behind_log(council, pending)
            return _being_updated(request, council)
        return self.get_response(request)


UNAVAILABLE = Counter(
    "patchwork_council_unavailable",
    "Requests to a council answered 503 because it cannot serve, by reason.",
    ["reason"],
)
MACHINE_PATHS = ("/api/", "/fhir/", "/federation/", "/.well-known/")
RETRY_AFTER_SECONDS = 60
LOG_EVERY_SECONDS = 60.0
_logged_at: dict[str, float] = {}


def _being_updated(request: HttpRequest, council: Council) -> HttpResponse:
    response: HttpResponse
    if request.path.startswith(MACHINE_PATHS):
        response = JsonResponse(
            {
                "detail": f"Patchwork for {council.name} is being updated: "
                f"try again in {RETRY_AFTER_SECONDS} seconds",
                "reason": "council_updating",
            },
            status=503,
        )
    else:
        response = render(request, "tenants/updating.html", {"council": council}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _behind_log(council: Council, pending: int) -> None:
    """One line a minute per council while it is behind, not one per request."""
    now = time.monotonic()
    if now - _logged_at.get(council.schema_name, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
        _logged_at[council.schema_name] = now
        log.warning(
            "Council %s (%s) lacks %d migrations: answering 503 until "
            "`patchwork migrate_platform` applies them",
            council.code,
            council.schema_name,
            pending,
        )
