"""A feed never leaves a sensitive involvement as lead professional (issue 14, point 2: the
lead is the team's visible point of contact; core.services._lead_check)."""

from __future__ import annotations

from core.models import Involvement
from tests.core.test_feeds import _csv, _run, brighton, involvement, person

__all__ = ["brighton"]  # the fixture, used by name below


def test_an_involvement_a_feed_moves_to_a_sensitive_service_stops_leading(brighton) -> None:  # type: ignore[no-untyped-def]
    """The school nurse's involvement leads; the next file says it is CAMHS's now: it
    becomes sensitive, and no longer the lead (which would be named to no one)."""
    _run(_csv([person("P1"), involvement("I1", "P1")]))
    Involvement.objects.filter(person__given_name="Lily").update(lead_professional=True)
    _run(
        _csv(
            [
                person("P1"),
                involvement(
                    "I1", "P1", organisation_code="Sussex CAMHS", role="CAMHS practitioner"
                ),
            ]
        )
    )
    moved = Involvement.objects.get(person__given_name="Lily")
    assert moved.sensitive and moved.organisation.name == "Sussex CAMHS"
    assert not moved.lead_professional
