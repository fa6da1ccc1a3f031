from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "The team around the child"
    default_auto_field = "django.db.models.BigAutoField"
