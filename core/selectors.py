"""Reads inside one council, with the access rules."""

from __future__ import annotations

from django.db.models import QuerySet

from core.models import Organisation


def organisations_list() -> QuerySet[Organisation]:
    return Organisation.objects.order_by("name")
