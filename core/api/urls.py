"""URLs of the REST API (mounted at /api/v1/) and of FHIR (mounted at /fhir/)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from core.api import fhir, imports, views

app_name = "api"

urlpatterns = [
    # Public, and read without looking at any token: a client holding an import token (which
    # no other endpoint accepts) may read the schema too.
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[]), name="schema"),
    path("tokens/", views.TokenCreate.as_view(), name="tokens"),
    path("search", views.Search.as_view(), name="search"),
    path("roles", views.Roles.as_view(), name="roles"),
    path("imports", imports.Imports.as_view(), name="imports"),
    path("imports/<int:run_id>", imports.ImportDetail.as_view(), name="import"),
    path("imports/<int:run_id>/report", imports.ImportReport.as_view(), name="import-report"),
    path("people", views.People.as_view(), name="people"),
    path("people/<int:person_id>", views.PersonDetail.as_view(), name="person"),
    path("people/<int:person_id>/network", views.PersonNetwork.as_view(), name="person-network"),
    path("people/<int:person_id>/openings", views.PersonOpenings.as_view(), name="person-openings"),
    path(
        "people/<int:person_id>/involvements",
        views.PersonInvolvements.as_view(),
        name="person-involvements",
    ),
    path(
        "involvements/<int:involvement_id>", views.InvolvementDetail.as_view(), name="involvement"
    ),
    path(
        "involvements/<int:involvement_id>/confirm",
        views.InvolvementConfirm.as_view(),
        name="involvement-confirm",
    ),
    path(
        "involvements/<int:involvement_id>/end",
        views.InvolvementEnd.as_view(),
        name="involvement-end",
    ),
    re_path(r"^.*$", views.NotFound.as_view(), name="not-found"),
]

fhir_urlpatterns = [
    path("CareTeam", fhir.CareTeamSearch.as_view(), name="careteam"),
    path("Patient/<int:person_id>", fhir.PatientRead.as_view(), name="patient"),
    path("metadata", fhir.Metadata.as_view(), name="metadata"),
    path("<path:path>", fhir.not_supported, name="not-supported"),
]
