"""Reads inside one council, with the access rules."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from core.models import Organisation


def organisations_list() -> QuerySet[Organisation]:
    return Organisation.objects.order_by("name")


def organisation_for_admin(organisation_id: int) -> Organisation:
    """The organisation with this id in the current council, or 404."""
    organisation = Organisation.objects.filter(pk=organisation_id).first()
    if organisation is None:
        raise Http404("No organisation with that id here")
    return organisation
