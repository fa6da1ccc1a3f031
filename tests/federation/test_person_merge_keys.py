"""A merge of two records changes what another council can match: the kept record's keys
cover both records' identifiers, the merged-away record has none, and a reversal puts the
keys back as they were."""

from __future__ import annotations

from datetime import date

from django_tenants.utils import schema_context

from accounts.models import User
from core.merges import person_merge, person_merge_reverse
from federation.models import MatchKey
from tests.factories import PersonFactory, UserFactory
from tests.federation.agreement import KAI_NHS


def _keys(person_id: int) -> set[tuple[str, str]]:
    return set(MatchKey.objects.filter(person_id=person_id).values_list("kind", "key"))


def test_merging_and_reversing_refreshes_the_match_keys(pair) -> None:  # type: ignore[no-untyped-def]
    """Staffordshire's second record of Kai (no NHS number) is kept; Kai's record, with the
    NHS number, is merged into it. The NHS key now belongs to the kept record; Kai's old
    record has no keys; reversing restores both sets exactly."""
    with schema_context(pair.staffordshire.schema_name):
        admin = UserFactory(role=User.Role.COUNCIL_ADMIN)
        second = PersonFactory(
            given_name="Kai", family_name="Jones", date_of_birth=date(2014, 6, 1), nhs_number=None
        )
        kai_keys, second_keys = _keys(pair.kai.pk), _keys(second.pk)
        assert any(kind == "nhs" for kind, _ in kai_keys)
        assert not any(kind == "nhs" for kind, _ in second_keys)

        merge = person_merge(actor=admin, keep=second, absorb=pair.kai)

        assert _keys(pair.kai.pk) == set()
        merged = _keys(second.pk)
        assert {k for k in kai_keys if k[0] == "nhs"} <= merged
        assert second_keys <= merged
        second.refresh_from_db()
        assert second.nhs_number == KAI_NHS

        person_merge_reverse(actor=admin, merge=merge)

        assert _keys(pair.kai.pk) == kai_keys
        assert _keys(second.pk) == second_keys
