from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and sign-in"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from accounts.lockouts import lockout_audit

        user_locked_out.connect(lockout_audit, dispatch_uid="accounts-lockout-audit")
