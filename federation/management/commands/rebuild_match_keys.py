from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from federation.models import DataSharingAgreement
from federation.services import match_keys_rebuild
from tenants.management.commands._council_arg import council_from_code


class Command(BaseCommand):
    help = "Recompute a council's match-key index for every agreement."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the council's ONS code, e.g. E06000043")

    def handle(self, *args: object, **options: str) -> None:
        council = council_from_code(options["code"])
        with schema_context(council.schema_name):
            for agreement in DataSharingAgreement.objects.all():
                count = match_keys_rebuild(agreement=agreement)
                self.stdout.write(
                    f"{agreement.agreement_id} ({agreement.partner_id}): {count} keys"
                )
