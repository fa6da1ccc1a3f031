from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation between councils"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # core never imports federation: federation listens to core's saves instead.
        from core.delivery.notifications import Delivery, notification_kind_register
        from core.extensions import (
            GOVERNANCE,
            PRACTITIONERS,
            NavigationLink,
            PersonPageFragment,
            SetUpStep,
            navigation_link_add,
            person_page_fragment_add,
            set_up_step_add,
        )
        from federation import selectors, signals

        signals.connect()
        person_page_fragment_add(PersonPageFragment("federation/person_action.html", "action"))
        navigation_link_add(
            NavigationLink(
                "federation:councils", "Other councils", PRACTITIONERS, 55, ("other_councils",)
            )
        )
        navigation_link_add(
            NavigationLink(
                "federation:agreements",
                "Data-sharing agreements",
                GOVERNANCE,
                148,
                also_active=("agreement", "agreement_new"),
            )
        )
        set_up_step_add(
            SetUpStep(
                "federation:agreements",
                "Agree data sharing with other councils",
                "A signed data-sharing agreement lets a lookup cross to a neighbouring council.",
                70,
                selectors.agreements_signed_exist,
            )
        )
        notification_kind_register(
            "federation_lookup",
            "Another council asks about a person you work with",
            Delivery.DIGEST,
            order=100,
        )
