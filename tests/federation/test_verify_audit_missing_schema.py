"""`patchwork verify_audit` for every council goes on past a council whose schema is gone,
names it as failed, and exits non-zero."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import Council


def test_it_reports_a_council_whose_schema_is_missing_and_checks_the_others(world, db) -> None:
    """A council row whose schema was dropped by hand (or never restored) is one failure
    among the councils, named with its code, not a crash that hides the rest."""
    Council.objects.create(
        name="Isle of Wight", code="E06000046", slug="isle-of-wight", schema_name="council_iow"
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 councils could not be checked \(E06000046\)"):
        call_command("verify_audit", stdout=out)
    report = out.getvalue()
    assert (
        "E06000046 Isle of Wight: FAILED, its schema council_iow is missing, "
        "so its audit log cannot be read"
    ) in report
    assert "E06000043 Brighton and Hove: " in report and "E10000028 Staffordshire: " in report
    # Every other council is checked and intact (live tests earlier in the run may have
    # committed councils of their own to the test database).
    assert report.count("events, intact") == Council.objects.count() - 1


def test_checking_that_council_alone_fails_the_same_way(world, db) -> None:
    """Named on the command line, the council gets the same plain report."""
    Council.objects.create(
        name="Isle of Wight", code="E06000046", slug="isle-of-wight", schema_name="council_iow"
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="could not be checked"):
        call_command("verify_audit", "E06000046", stdout=out)
    assert "E06000046 Isle of Wight: FAILED, its schema council_iow is missing" in out.getvalue()
