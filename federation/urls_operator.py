"""Federation URLs on the platform's own host: the operator's peer directory and queue."""

from django.urls import path

from federation import api, views

app_name = "federation_operator"

urlpatterns = [
    path(".well-known/patchwork/directory", api.directory, name="directory"),
    path("federation/peers/", views.peers, name="peers"),
    path("federation/peers/add/", views.peer_add, name="peer_add"),
    path("federation/peers/<int:peer_id>/remove/", views.peer_remove, name="peer_remove"),
    path("federation/peers/<int:peer_id>/restore/", views.peer_restore, name="peer_restore"),
    path("federation/cards/<str:code>/", views.council_card, name="council_card"),
    path("federation/outbox/", views.outbox, name="outbox"),
    path(
        "federation/checkpoints/<str:code>/",
        views.audit_checkpoint_latest,
        name="audit_checkpoint_latest",
    ),
]
