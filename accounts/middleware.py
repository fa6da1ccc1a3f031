"""django-otp's middleware, reading the session's verified device by one plain statement.

On every request of a signed-in user django-otp loads the device that verified the second
factor (`request.user.otp_device`): a device deleted since (a reset second factor), no
longer confirmed or someone else's is no device, and the user is not verified. That rule is
django-otp's own and unchanged here; only the read is a prepared plain statement instead of
the ORM's query, which cost more to build than the database took to answer it."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import connection
from django_otp.middleware import OTPMiddleware
from django_otp.models import Device


class VerifiedDeviceMiddleware(OTPMiddleware):
    def _device_from_persistent_id(self, persistent_id: str) -> Device | None:
        try:
            label, device_id = self._normalize_persistent_id(persistent_id).rsplit("/", 1)
            model: Any = apps.get_model(label)
            pk = int(device_id)
        except (ValueError, LookupError):
            return None
        if not issubclass(model, Device):
            return None
        fields = model._meta.concrete_fields
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM {table} WHERE id = %s", [pk])  # noqa: S608
            row = cursor.fetchone()
        if row is None:
            return None
        return model.from_db(connection.alias, [f.attname for f in fields], row)
