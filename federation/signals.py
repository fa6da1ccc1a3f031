"""How the federation follows changes in core without core importing it: Django signals.

- An involvement saved (added, updated, ended) queues pointer updates for peers that
  matched the person, inside the same transaction (the transactional outbox), and asks
  Celery to deliver them once that transaction commits.
- A person or one of their names saved refreshes that person's match keys.

(A council onboarded joins the peer directory: `federation.directory.signals`.)"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from core.models import Involvement, Person, PersonName
from tenants.db import current_schema
from tenants.queueing import task_enqueue


def _in_council_schema() -> bool:
    return current_schema() not in {"public", ""}


def _queue_delivery(peer_ids: set[str]) -> None:
    from federation.tasks import outbox_deliver_task

    for peer_id in sorted(peer_ids):
        task_enqueue(outbox_deliver_task, peer_id)


def involvement_saved(sender: type, instance: Involvement, **kwargs: Any) -> None:
    if not _in_council_schema():
        return
    from federation.services import involvement_changed

    queued = involvement_changed(person_id=instance.person_id)
    if queued:
        _queue_delivery({m.peer_id for m in queued})


def person_saved(sender: type, instance: Person, **kwargs: Any) -> None:
    if _in_council_schema():
        from federation.services import match_keys_refresh_person

        match_keys_refresh_person(person_id=instance.pk)


def person_name_saved(sender: type, instance: PersonName, **kwargs: Any) -> None:
    if _in_council_schema():
        from federation.services import match_keys_refresh_person

        match_keys_refresh_person(person_id=instance.person_id)


def records_imported(
    sender: type, person_ids: list[int], involvement_person_ids: list[int], **kwargs: Any
) -> None:
    """A feed import wrote people and involvements in bulk (no post_save): refresh those
    people's match keys, and queue pointer updates for peers that matched them."""
    if not _in_council_schema():
        return
    from federation.services import involvements_changed_bulk, match_keys_refresh_people

    match_keys_refresh_people(person_ids=person_ids)
    queued = involvements_changed_bulk(person_ids=involvement_person_ids)
    if queued:
        _queue_delivery({m.peer_id for m in queued})


def connect() -> None:
    from core.signals import records_imported as imported

    imported.connect(records_imported, dispatch_uid="federation-records-imported")
    post_save.connect(involvement_saved, sender=Involvement, dispatch_uid="federation-involvement")
    post_save.connect(person_saved, sender=Person, dispatch_uid="federation-person")
    post_save.connect(person_name_saved, sender=PersonName, dispatch_uid="federation-name")
    post_delete.connect(person_name_saved, sender=PersonName, dispatch_uid="federation-name-del")
