from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Councils (the platform)"
    default_auto_field = "django.db.models.BigAutoField"
