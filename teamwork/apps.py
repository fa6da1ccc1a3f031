from django.apps import AppConfig


class TeamworkConfig(AppConfig):
    name = "teamwork"
    verbose_name = "Working as one team around a person"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # core never imports teamwork: teamwork adds its panel to the person page, its link
        # to the navigation and its reminder emails' text through core's extension points.
        from teamwork import extensions

        extensions.register()
