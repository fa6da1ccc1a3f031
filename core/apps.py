from typing import Any

from django.apps import AppConfig


def council_schema_created(sender: type, council: Any, **kwargs: Any) -> None:
    """A new council starts with the national default role list (it edits it later)."""
    from core.services import roles_defaults_add

    roles_defaults_add()


def council_credentials_forget(sender: type, council: Any, **kwargs: Any) -> None:
    """A council brought back from an archive accepts none of its source systems' import
    tokens (an administrator issues each system a new one), nor its single sign-on."""
    from core.models import SourceSystem

    SourceSystem.objects.update(token_hash="")
    # Nor does it sign anyone in through its old provider until an administrator enters
    # the client secret again (accounts cannot hear tenants' signal: it sits below).
    from accounts.sso import sso_credentials_forget

    sso_credentials_forget()


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "The team around the child"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # tenants never imports core: onboarding sends a signal from inside the new schema.
        from accounts.auditing import account_audited, account_emailed
        from core import setup  # noqa: F401  (registers core's set-up steps)
        from core.account_events import account_event_audit, account_event_email
        from tenants.signals import council_credentials_forget as forget
        from tenants.signals import council_schema_created as created

        created.connect(council_schema_created, dispatch_uid="core-default-roles")
        account_audited.connect(account_event_audit, dispatch_uid="core-account-audit")
        account_emailed.connect(account_event_email, dispatch_uid="core-account-email")
        forget.connect(council_credentials_forget, dispatch_uid="core-import-tokens")
