"""Delivery: the email outbox and change notifications, used by core's services and by the
apps above core (teamwork, federation). It imports nothing of theirs: what it needs from
them (how to word a reminder email) they register with it."""
