"""URLs on the platform's own host: the operator console."""

from django.urls import include, path

from deploy import health

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("", include("accounts.urls")),
    path("", include("tenants.urls")),
    path("", include("federation.urls_operator")),
]
