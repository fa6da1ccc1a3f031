from django.urls import path

from core import feeds_views, people_views, records_views, setup_views, staff_views, views

app_name = "core"

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("search/break-glass/", views.search_break_glass, name="search_break_glass"),
    path("people/new/", people_views.person_new, name="person_new"),
    path("people/<int:person_id>/", views.person, name="person"),
    path("people/<int:person_id>/added/", people_views.person_added, name="person_added"),
    path("people/<int:person_id>/edit/", people_views.person_edit, name="person_edit"),
    path("people/<int:person_id>/death/", people_views.person_death, name="person_death"),
    path("people/<int:person_id>/family/add/", people_views.relative_find, name="relative_find"),
    path(
        "people/<int:person_id>/family/add/<int:relative_id>/",
        people_views.relative_add,
        name="relative_add",
    ),
    path("people/<int:person_id>/family/", views.family, name="family"),
    path("people/<int:person_id>/views/", views.person_views, name="person_views"),
    path(
        "people/<int:person_id>/involvements/new/",
        views.involvement_new,
        name="involvement_new",
    ),
    path(
        "people/<int:person_id>/contact-requests/new/",
        views.contact_request_new,
        name="contact_request_new",
    ),
    path("involvements/<int:involvement_id>/", views.involvement_detail, name="involvement"),
    path(
        "involvements/<int:involvement_id>/confirm/",
        views.involvement_confirm,
        name="involvement_confirm",
    ),
    path(
        "involvements/<int:involvement_id>/update/",
        views.involvement_update,
        name="involvement_update",
    ),
    path("involvements/<int:involvement_id>/end/", views.involvement_end, name="involvement_end"),
    path("my/involvements/", views.my_involvements, name="my_involvements"),
    path("my/profile/", views.profile, name="profile"),
    path("my/notifications/", views.notifications, name="notifications"),
    path("my/contact-requests/", views.contact_requests, name="contact_requests"),
    path(
        "my/contact-requests/<int:request_id>/",
        views.contact_request_decide,
        name="contact_request_decide",
    ),
    path("admin/users/", views.users, name="users"),
    path(
        "admin/users/<int:user_id>/invitation/",
        views.user_invitation_new,
        name="user_invitation_new",
    ),
    path("admin/organisations/", views.organisations, name="organisations"),
    path(
        "admin/organisations/<int:organisation_id>/",
        views.organisation_detail,
        name="organisation_detail",
    ),
    path("admin/roles/", views.roles, name="roles"),
    path("notifications/", views.notifications_short, name="notifications_short"),
    path(
        "notifications/preferences/",
        views.notification_preferences,
        name="notification_preferences",
    ),
    path("admin/email/problems/", views.email_problems, name="email_problems"),
    path("admin/email/outbox/", views.email_outbox, name="email_outbox"),
    path("admin/audit/", views.audit, name="audit"),
    # Merging records and subject access (core/records_views.py).
    path("admin/merges/", records_views.merges_list, name="merges"),
    path("admin/merges/new/", records_views.merge_find, name="merge_find"),
    path("admin/merges/new/<int:keep_id>/", records_views.merge_find, name="merge_find_other"),
    path(
        "admin/merges/new/<int:keep_id>/<int:absorb_id>/",
        records_views.merge_check,
        name="merge_check",
    ),
    path("admin/merges/<int:merge_id>/", records_views.merge_detail, name="merge_detail"),
    path(
        "admin/people/subject-access/",
        records_views.subject_access_find,
        name="subject_access_find",
    ),
    path(
        "admin/people/<int:person_id>/subject-access/",
        records_views.subject_access_document,
        name="subject_access",
    ),
    path(
        "admin/people/<int:person_id>/subject-access.csv",
        records_views.subject_access_csv,
        name="subject_access_csv",
    ),
    # Feeds from source systems (core/feeds_views.py).
    path("admin/imports/", feeds_views.imports, name="imports"),
    path("admin/imports/systems/new/", feeds_views.source_system_new, name="source_system_new"),
    path(
        "admin/imports/systems/<int:source_id>/token/",
        feeds_views.source_system_token_new,
        name="source_system_token_new",
    ),
    path("admin/imports/<int:run_id>/", feeds_views.import_run, name="import_run"),
    path(
        "admin/imports/<int:run_id>/apply/", feeds_views.import_run_apply, name="import_run_apply"
    ),
    path(
        "admin/imports/<int:run_id>/report.csv",
        feeds_views.import_run_report,
        name="import_run_report",
    ),
    path("admin/audit/export.csv", views.audit_export_csv, name="audit_export"),
    # Set-up: the administrator's checklist and what it links to (core/setup_views.py).
    path("admin/set-up/", setup_views.set_up, name="set_up"),
    path("admin/set-up/reviewed/<slug:step>/", setup_views.set_up_review, name="set_up_review"),
    path("admin/set-up/policy/", setup_views.set_up_policy, name="set_up_policy"),
    path("admin/set-up/schools/", setup_views.register_import, name="register_import"),
    path("admin/set-up/nhs/", setup_views.register_import_nhs, name="register_import_nhs"),
    path(
        "admin/set-up/sensitive-services/",
        setup_views.sensitive_services,
        name="sensitive_services",
    ),
    path("admin/roles/defaults/", setup_views.roles_defaults, name="roles_defaults"),
    path("admin/roles/<int:role_id>/", setup_views.role_change, name="role_change"),
    # People who come and go (core/staff_views.py): invitations by email, leavers, movers.
    path("admin/invitations/", staff_views.invitations_list, name="staff_invitations"),
    path("admin/users/invite-file/", staff_views.staff_invite_file, name="staff_invite_file"),
    path("admin/users/<int:user_id>/", staff_views.staff_user, name="staff_user"),
    path(
        "admin/users/<int:user_id>/invitation/resend/",
        staff_views.staff_invitation_resend,
        name="staff_invitation_resend",
    ),
    path(
        "admin/users/<int:user_id>/invitation/revoke/",
        staff_views.staff_invitation_revoke,
        name="staff_invitation_revoke",
    ),
    path(
        "admin/users/<int:user_id>/deactivate/",
        staff_views.staff_deactivate,
        name="staff_deactivate",
    ),
    path("admin/users/<int:user_id>/move/", staff_views.staff_move, name="staff_move"),
]
