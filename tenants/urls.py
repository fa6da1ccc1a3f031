from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("", views.console, name="console"),
    path("councils/new/", views.council_new, name="council_new"),
    path("councils/<str:code>/suspend/", views.council_suspend_view, name="council_suspend"),
    path("councils/<str:code>/resume/", views.council_resume_view, name="council_resume"),
]
