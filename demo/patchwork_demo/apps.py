from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "patchwork_demo"
    label = "demo"
    verbose_name = "Demo councils and synthetic data (never in production)"
