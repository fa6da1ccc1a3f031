"""Routing by host: the platform domain serves the operator console from the public schema;
`<slug>.<platform domain>` serves that council from its own schema; anything else is 404."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import render
from django_tenants.middleware.main import TenantMainMiddleware

from tenants.db import models_from_sql, tenant_connection
from tenants.models import Council, Domain

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


class SuspendedCouncilMiddleware:
    """A suspended council answers every request with the "suspended" page: no sign-in,
    and open sessions are useless. Health checks are not council pages and are not here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        council = getattr(request, "tenant", None)
        if isinstance(council, Council) and council.is_suspended:
            return render(request, "tenants/suspended.html", {"council": council}, status=503)
        return self.get_response(request)
