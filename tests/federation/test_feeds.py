"""People from a source system's feed are in the federation's index like anyone else: their
match keys are made when they arrive, and go when a feed shields them (decision 0009)."""

from __future__ import annotations

import csv
import io

from django_tenants.utils import schema_context

from core.feeds import CSV_COLUMNS, feed_import, import_run_start
from core.models import Person, SourceSystem
from federation.models import MatchKey
from tests.federation.agreement import KAI_NHS


def _import(rows: list[dict[str, str]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    source, _ = SourceSystem.objects.get_or_create(name="Staffs LCS")
    run = import_run_start(
        source=source,
        file_format="csv",
        binary=io.BytesIO(out.getvalue().encode()),
        full_snapshot=False,
        dry_run=False,
    )
    feed_import(run=run)


def test_people_from_a_feed_get_match_keys_and_lose_them_when_shielded(  # type: ignore[no-untyped-def]
    pair, settings, tmp_path
) -> None:
    settings.DATA_DIR = tmp_path
    new = {
        "record": "person",
        "source_id": "S1",
        "given_name": "Remy",
        "family_name": "Okafor",
        "date_of_birth": "2012-08-08",
        "nhs_number": "4010232137",
    }
    kai = {
        "record": "person",
        "source_id": "S2",
        "given_name": "Kai",
        "family_name": "Müller-Jones",
        "date_of_birth": "2014-06-01",
        "nhs_number": KAI_NHS,
        "shielded": "yes",
    }
    with schema_context(pair.staffordshire.schema_name):
        assert MatchKey.objects.filter(person=pair.kai).exists()
        _import([new, kai])
        remy = Person.objects.get(nhs_number="4010232137")
        assert MatchKey.objects.filter(person=remy).exists()
        assert not MatchKey.objects.filter(person=pair.kai).exists()
