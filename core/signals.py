"""Signals core sends for changes made outside the ORM's saves, so that apps above core
(federation's match keys and pointer updates) follow them without core importing them."""

from django.dispatch import Signal

# Sent inside the transaction of a batch of a feed import (core.feeds), with `person_ids`
# (people created or changed) and `involvement_person_ids` (people whose involvements were
# created, changed or ended). Bulk writes send no post_save.
records_imported = Signal()
