from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from federation import client
from federation.models import DataSharingAgreement
from tenants.management.commands._council_arg import council_from_code


class Command(BaseCommand):
    help = (
        "Give a council's agreements in force a fresh match-key secret, sealed to each "
        "partner (HPKE) in a signed message; the old secret stays in use until the partner "
        "accepts. A rekey left waiting (partner unreachable) is resent unchanged by running "
        "this again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the council's ONS code, e.g. E06000043")
        parser.add_argument("--agreement", default="", help="only this agreement (its id)")

    def handle(self, *args: object, **options: str) -> None:
        council = council_from_code(options["code"])
        with schema_context(council.schema_name):
            agreements = [
                a
                for a in DataSharingAgreement.objects.filter(
                    status=DataSharingAgreement.Status.ACTIVE
                ).order_by("created_at")
                if a.is_in_force or a.pending_rekey
            ]
            if options["agreement"]:
                agreements = [a for a in agreements if a.agreement_id == options["agreement"]]
                if not agreements:
                    raise CommandError(f"No agreement {options['agreement']} in force here")
            failed = 0
            for agreement in agreements:
                try:
                    result = client.agreement_rekey(agreement=agreement)
                except (client.PartnerUnreachable, ValidationError) as exc:
                    failed += 1
                    message = " ".join(getattr(exc, "messages", [str(exc)]))
                    self.stderr.write(
                        f"{agreement.agreement_id} ({agreement.partner_id}): {message}"
                    )
                    continue
                line = f"{result.agreement_id} ({agreement.partner_id}): {result.outcome}"
                if result.detail:
                    line += f" - {result.detail}"
                if result.outcome == "rekeyed":
                    self.stdout.write(self.style.SUCCESS(line))
                else:
                    failed += 1
                    self.stderr.write(line)
            if failed:
                raise CommandError(
                    f"{failed} of {len(agreements)} agreements were not re-keyed; "
                    "those still use their old secret"
                )
            self.stdout.write(f"{len(agreements)} agreements re-keyed")
