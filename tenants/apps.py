from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Councils (the platform)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.auditing import account_audited, account_emailed
        from tenants.account_events import account_event_audit, account_event_email

        account_audited.connect(account_event_audit, dispatch_uid="tenants-account-audit")
        account_emailed.connect(account_event_email, dispatch_uid="tenants-account-email")
