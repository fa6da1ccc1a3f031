"""The Django project: settings, URLs, WSGI/ASGI, Celery app and the `patchwork` CLI."""

from deploy.celery import app as celery_app

__all__ = ["celery_app"]
