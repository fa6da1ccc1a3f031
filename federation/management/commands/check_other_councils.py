import json

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404
from django_tenants.utils import schema_context

from accounts.models import User
from federation.client import other_councils_check
from tenants.management.commands._council_arg import council_from_code


class Command(BaseCommand):
    help = (
        "Ask every peer with an agreement who is involved with a person, as a named practitioner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the council's ONS code, e.g. E06000043")
        parser.add_argument("--as", dest="email", required=True, help="the practitioner asking")
        parser.add_argument("--person", type=int, required=True, help="the person's id here")
        parser.add_argument("--purpose", default="safeguarding")

    def handle(self, *args: object, **options: object) -> None:
        council = council_from_code(str(options["code"]))
        with schema_context(council.schema_name):
            user = User.objects.filter(email=str(options["email"]).lower()).first()
            if user is None:
                raise CommandError(f"No user {options['email']} at {council.name}")
            try:
                answers = other_councils_check(
                    user=user,
                    person_id=int(options["person"]),  # type: ignore[call-overload]
                    purpose=str(options["purpose"]),
                )
            except (Http404, PermissionDenied) as exc:
                raise CommandError("That practitioner cannot see that person's network") from exc
        for answer in answers:
            self.stdout.write(answer.label)
            for pointer in answer.pointers:
                self.stdout.write(
                    f"  {pointer['role']} at {pointer['organisation']} since {pointer['since']}"
                )
            if answer.sensitive_service_involved:
                self.stdout.write(f"  a sensitive service is involved: {answer.duty_team_contact}")
            if answer.summary:
                self.stdout.write(f"  {answer.summary}")
            if answer.outcome == "possible_mismatch" and answer.duty_team_contact:
                self.stdout.write(f"  duty team: {answer.duty_team_contact}")
        self.stderr.write(json.dumps([a.outcome for a in answers]))
