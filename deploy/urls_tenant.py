"""URLs on a council's host."""

from django.urls import include, path

from core.api.urls import fhir_urlpatterns
from deploy import health

urlpatterns = [
    path("healthz", health.healthz),
    path("", include("accounts.urls")),
    path("", include("core.urls")),
    path("", include("federation.urls")),
    path("", include("teamwork.urls")),
    path("api/v1/", include("core.api.urls")),
    path("fhir/", include((fhir_urlpatterns, "fhir"))),
]
