from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation between councils"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # core never imports federation: federation listens to core's saves instead.
        from core.extensions import PersonPageFragment, person_page_fragment_add
        from federation import signals

        signals.connect()
        person_page_fragment_add(PersonPageFragment("federation/person_action.html", "action"))
