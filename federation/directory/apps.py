from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    """The deployment-wide part of the federation, in the public schema: the peer directory
    and each council's signing keys. Each council's own federation records (agreements,
    exchanges, match keys, outbox) are in its schema: the `federation` app."""

    name = "federation.directory"
    label = "federation_directory"
    verbose_name = "Federation directory (the platform's peers and council keys)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # tenants never imports federation: a new council gets its keys and its peer entry
        # from the platform's own post_save signal.
        from federation.directory import signals

        signals.connect()
