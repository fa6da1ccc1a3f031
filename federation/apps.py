from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation between councils"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # core never imports federation: federation listens to core's saves instead.
        from federation import signals

        signals.connect()
