from django.urls import path

from accounts import sso_views, views

app_name = "accounts"

urlpatterns = [
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/code/", views.sign_in_code, name="sign_in_code"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("invitation/<str:token>/", views.invitation, name="invitation"),
]

# Single sign-on with the council's own identity provider (accounts/sso_views.py).
urlpatterns += [
    path("sign-in/sso/", sso_views.sso_start, name="sso_start"),
    path("sign-in/sso/callback/", sso_views.sso_callback, name="sso_callback"),
    path("admin/single-sign-on/", sso_views.sso_settings, name="sso_settings"),
]
