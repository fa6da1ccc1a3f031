"""URLs on the platform's own host: the operator console."""

from django.urls import include, path

from deploy import health, metrics

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics.metrics),
    path("", include("accounts.urls")),
    path("", include("tenants.urls")),
    path("", include("federation.urls_operator")),
]
