"""The Celery app. Tasks carry the council's schema (tenant-schemas-celery), so a task
enqueued while serving Brighton runs in Brighton's schema and nowhere else.

Apps declare tasks with `celery.shared_task`; importing `deploy` creates this app first, so
those tasks are bound to it and inherit its schema-carrying task class."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")

app = CeleryApp("patchwork")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
