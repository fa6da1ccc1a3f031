"""The demo seeder's NHS numbers come from one national space, a block per council, so no
two councils' people share one (a shared number made the demo answer with another child's
teacher: issue 16); Brighton and Hove keeps the numbers its demo always had."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django_tenants.utils import schema_context
from patchwork_demo.seeding import (
    NHS_BLOCK_SLOTS,
    NHS_SPACE,
    demo_data_seed,
    nhs_number_block,
)

from core.identifiers import nhs_number_is_valid
from core.models import Person


def test_every_council_with_childrens_services_has_a_block_of_its_own() -> None:
    """The 350 blocks and Brighton's own never overlap, and none is a number England,
    Wales, Scotland or Northern Ireland issues to patients."""
    codes = [f"{prefix}{n:06d}" for prefix, count in NHS_BLOCK_SLOTS for n in range(1, count + 1)]
    blocks = sorted({nhs_number_block(code) for code in codes} | {nhs_number_block("E06000043")})
    assert len(blocks) == len(codes)  # Brighton's legacy block replaces its own slot
    for (first, size), (following, _) in zip(blocks, blocks[1:], strict=False):
        assert first + size <= following
    for first, size in blocks:
        assert first >= 500_000_000 and not 600_000_000 <= first < 800_000_000
        assert first + size <= 1_000_000_000
    within = [
        (first, size)
        for first, size in blocks
        if any(low <= first and first + size <= high for low, high in NHS_SPACE)
    ]
    assert len(within) == len(blocks) - 1  # all but Brighton's, 990 000 000 upward
    assert nhs_number_block("E06000043") == (990_000_000, 10_000_000)


def test_a_council_without_childrens_services_is_told_so() -> None:
    with pytest.raises(ImproperlyConfigured, match="No block of demo NHS numbers for E07000001"):
        nhs_number_block("E07000001")


def test_the_two_demo_councils_share_no_nhs_number_and_brighton_keeps_its_own(world, db) -> None:  # type: ignore[no-untyped-def]
    """Seeded as `demo_setup` seeds them: no number in both, every one valid and inside the
    council's block; Brighton's third person is still Stuart Anderson-Winter, 9906404566."""
    numbers = {}
    for council in (world.brighton, world.staffordshire):
        with schema_context(council.schema_name):
            demo_data_seed(
                council_name=council.name,
                council_code=council.code,
                council_slug=council.slug,
                children=300,
                seed=int(council.code[1:]),
            )
            numbers[council.code] = set(
                Person.objects.exclude(nhs_number=None).values_list("nhs_number", flat=True)
            )
            first, size = nhs_number_block(council.code)
            assert all(first <= int(n[:9]) < first + size for n in numbers[council.code])
            assert all(nhs_number_is_valid(n) for n in numbers[council.code])
    assert len(numbers["E06000043"]) > 300 and len(numbers["E10000028"]) > 300
    assert not numbers["E06000043"] & numbers["E10000028"]
    with schema_context(world.brighton.schema_name):
        stuart = Person.objects.get(nhs_number="9906404566")
    assert (stuart.given_name, stuart.family_name) == ("Stuart", "Anderson-Winter")
