"""Federation URLs on a council's host: the protocol endpoints and the council's pages."""

from django.urls import path

from federation import api, views

app_name = "federation"

urlpatterns = [
    path(".well-known/patchwork/keys", api.keys, name="keys"),
    path(
        "api/v1/audit/checkpoints/latest",
        api.AuditCheckpointLatest.as_view(),
        name="audit_checkpoint_latest",
    ),
    path("federation/v1/who-is-involved", api.who_is_involved, name="who_is_involved"),
    path("federation/v1/batch", api.batch, name="batch"),
    path("federation/v1/pointer-updates", api.pointer_updates, name="pointer_updates"),
    path("federation/v1/agreements/offer", api.agreement_offer, name="agreement_offer"),
    path(
        "federation/v1/agreements/countersign",
        api.agreement_countersign,
        name="agreement_countersign",
    ),
    path("federation/v1/agreements/revoke", api.agreement_revoke, name="agreement_revoke"),
    path("federation/v1/agreements/rekey", api.agreement_rekey, name="agreement_rekey"),
    path("federation/v1/audit/witness", api.audit_witness, name="audit_witness"),
    path("federation/v1/audit/witnessed", api.audit_witnessed, name="audit_witnessed"),
    path("federation/councils/", views.councils, name="councils"),
    path("federation/agreements/", views.agreements, name="agreements"),
    path("federation/agreements/new/", views.agreement_new, name="agreement_new"),
    path("federation/agreements/<str:agreement_id>/", views.agreement_detail, name="agreement"),
    path(
        "federation/agreements/<str:agreement_id>/sign/",
        views.agreement_sign,
        name="agreement_sign",
    ),
    path(
        "federation/agreements/<str:agreement_id>/send/",
        views.agreement_send,
        name="agreement_send",
    ),
    path(
        "federation/agreements/<str:agreement_id>/revoke/",
        views.agreement_revoke,
        name="agreement_revoke_page",
    ),
    path(
        "federation/people/<int:person_id>/other-councils/",
        views.other_councils,
        name="other_councils",
    ),
]
