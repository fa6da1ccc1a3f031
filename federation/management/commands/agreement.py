from datetime import date, timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django_tenants.utils import schema_context

from federation import client, services
from federation.models import DataSharingAgreement
from tenants.management.commands._council_arg import council_from_code


class Command(BaseCommand):
    help = (
        "Data-sharing agreements of a council: list, propose, sign (or countersign), send, revoke."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "propose", "sign", "send", "revoke"])
        parser.add_argument("code", help="the council's ONS code, e.g. E06000043")
        parser.add_argument("--id", default="", help="the agreement (sign, send, revoke)")
        parser.add_argument("--partner", default="", help="e.g. council:E10000028 (propose)")
        parser.add_argument("--purpose", action="append", default=[], help="repeatable")
        parser.add_argument(
            "--role", action="append", default=[], help="a shareable role; repeatable"
        )
        parser.add_argument("--legal-basis", default="public_task")
        parser.add_argument("--demographic", action="store_true", help="allow name + date of birth")
        parser.add_argument("--days", type=int, default=365, help="how long it is in force")
        parser.add_argument("--reason", default="", help="why it is revoked")

    def handle(self, *args: object, **options: object) -> None:
        council = council_from_code(str(options["code"]))
        with schema_context(council.schema_name):
            try:
                self._act(options)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
            except client.PartnerUnreachable as exc:
                raise CommandError(f"Signed here, but not delivered: {exc}") from exc

    def _agreement(self, options: dict[str, object]) -> DataSharingAgreement:
        agreement = DataSharingAgreement.objects.filter(agreement_id=options["id"]).first()
        if agreement is None:
            raise CommandError(f"No agreement {options['id']} here")
        return agreement

    def _act(self, options: dict[str, object]) -> None:
        action = options["action"]
        if action == "list":
            for a in DataSharingAgreement.objects.all():
                self.stdout.write(f"{a.agreement_id}  {a.partner_id}  {a.state_label}")
        elif action == "propose":
            today: date = timezone.localdate()
            agreement = services.agreement_propose(
                actor=None,
                partner_id=str(options["partner"]),
                purposes=options["purpose"] or ["safeguarding"],  # type: ignore[arg-type]
                shareable_roles=options["role"],  # type: ignore[arg-type]
                legal_basis=str(options["legal_basis"]),
                demographic_matching=bool(options["demographic"]),
                valid_from=today,
                valid_until=today + timedelta(days=int(options["days"])),  # type: ignore[call-overload]
            )
            self.stdout.write(agreement.agreement_id)
        elif action == "sign":
            agreement = client.agreement_sign(actor=None, agreement=self._agreement(options))
            self.stdout.write(
                self.style.SUCCESS(f"{agreement.agreement_id}: {agreement.state_label}")
            )
        elif action == "send":
            client.agreement_deliver(agreement=self._agreement(options))
            self.stdout.write(self.style.SUCCESS("Sent"))
        elif action == "revoke":
            agreement = services.agreement_revoke(
                actor=None, agreement=self._agreement(options), reason=str(options["reason"])
            )
            client.agreement_revoke_notify(agreement=agreement)
            self.stdout.write(self.style.SUCCESS(f"{agreement.agreement_id}: revoked"))
