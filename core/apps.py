from typing import Any

from django.apps import AppConfig


def council_schema_created(sender: type, council: Any, **kwargs: Any) -> None:
    """A new council starts with the national default role list (it edits it later)."""
    from core.services import roles_defaults_add

    roles_defaults_add()


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "The team around the child"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # tenants never imports core: onboarding sends a signal from inside the new schema.
        from core import setup  # noqa: F401  (registers core's set-up steps)
        from tenants.signals import council_schema_created as created

        created.connect(council_schema_created, dispatch_uid="core-default-roles")
