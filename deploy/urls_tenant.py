"""URLs on a council's host."""

from django.urls import include, path

from deploy import health

urlpatterns = [
    path("healthz", health.healthz),
    path("", include("accounts.urls")),
    path("", include("core.urls")),
]
