from django.urls import path

from core import views

app_name = "core"

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/users/", views.users, name="users"),
    path("admin/organisations/", views.organisations, name="organisations"),
    path(
        "admin/organisations/<int:organisation_id>/",
        views.organisation_detail,
        name="organisation_detail",
    ),
]
