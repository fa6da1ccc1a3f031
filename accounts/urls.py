from django.urls import path

from accounts import sso_views, views

app_name = "accounts"

urlpatterns = [
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/code/", views.sign_in_code, name="sign_in_code"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("invitation/<str:token>/", views.invitation, name="invitation"),
]

# Lockouts and second factors (decision 0019; accounts/factors_views.py).
from accounts import factors_views  # noqa: E402

urlpatterns += [
    path("sign-in/recovery-code/", factors_views.sign_in_recovery, name="sign_in_recovery"),
    path("sign-in/new-authenticator/", factors_views.sign_in_enrol, name="sign_in_enrol"),
    path("my/recovery-codes/", factors_views.recovery_codes, name="recovery_codes"),
    path("admin/locked-accounts/", factors_views.locked, name="locked_accounts"),
    path(
        "admin/locked-accounts/<int:user_id>/unlock/",
        factors_views.unlock,
        name="account_unlock",
    ),
    path("admin/second-factors/", factors_views.second_factors, name="second_factors"),
    path(
        "admin/second-factors/<int:user_id>/reset/",
        factors_views.second_factor_reset_confirm,
        name="second_factor_reset",
    ),
]

# Single sign-on with the council's own identity provider (accounts/sso_views.py).
urlpatterns += [
    path("sign-in/sso/", sso_views.sso_start, name="sso_start"),
    path("sign-in/sso/callback/", sso_views.sso_callback, name="sso_callback"),
    path("admin/single-sign-on/", sso_views.sso_settings, name="sso_settings"),
]
