from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import archives
from tenants.backups import RestoreRefused, council_import
from tenants.selectors import council_url


class Command(BaseCommand):
    help = (
        "Bring a council back from its export or offboarding archive as a new council "
        "(a schema cloned from the template, then its rows). It keeps every record, user, "
        "role and audit event, but none of the credentials of the council it came from, "
        "which may still be running: no session, API token, import token, unused "
        "invitation, password or authenticator app works in it. Each active administrator "
        "gets a new one-time invitation link (printed here), and invites everyone else "
        "again from the Users page; each source system needs a new import token."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", type=Path)
        parser.add_argument("--code", default="", help="a new ONS code (default: the archive's)")
        parser.add_argument("--name", default="", help="a new name (default: the archive's)")
        parser.add_argument("--slug", default="", help="a new web address name")

    def handle(self, *args: object, **options: object) -> None:
        try:
            done = council_import(
                path=options["archive"],  # type: ignore[arg-type]
                code=str(options["code"]),
                name=str(options["name"]),
                slug=str(options["slug"]),
            )
        except (archives.ArchiveError, RestoreRefused) as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            lines = [f"  {field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
            raise CommandError("Nothing was imported:\n" + "\n".join(lines)) from exc
        council = done.council
        self.stdout.write(
            self.style.SUCCESS(f"Imported {council} with {done.rows} rows in {done.seconds:.1f}s")
        )
        self.stdout.write(f"  schema:   {council.schema_name}")
        self.stdout.write(f"  address:  {council_url(council)}")
        self.stdout.write(
            "  a new signing key was made: send peers the council's new card "
            f"(patchwork export_council_card {council.code})"
        )
        self.stdout.write(
            "  nobody can sign in with what they used before: each administrator's new "
            "invitation (works once; send it securely):"
        )
        for email, url in done.invitations:
            self.stdout.write(f"    {email}: {url}")
        if not done.invitations:
            self.stdout.write(
                "    none: the council has no active administrator; make one with "
                "a new council's onboarding or ask support"
            )
