"""django-otp's middleware, reading the session's verified device by one plain statement.

On every request of a signed-in user django-otp loads the device that verified the second
factor (`request.user.otp_device`): a device deleted since (a reset second factor), no
longer confirmed or someone else's is no device, and the user is not verified. That rule is
django-otp's own and unchanged here; only the read is a prepared plain statement instead of
the ORM's query, which cost more to build than the database took to answer it."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django_otp.middleware import OTPMiddleware
from django_otp.models import Device

from accounts.reads import model_by_id


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
        return model_by_id(model, pk)
