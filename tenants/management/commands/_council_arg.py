from django.core.management.base import CommandError

from tenants.models import Council
from tenants.selectors import council_by_code


def council_from_code(code: str) -> Council:
    council = council_by_code(code)
    if council is None:
        raise CommandError(f"No council with the code {code.strip().upper()} is on this platform")
    return council
