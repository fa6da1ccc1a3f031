import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils.text import slugify
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Organisation, Person
from core.registers import register_area_set, register_import
from patchwork_demo.seeding import (
    DEMO_COUNCILS,
    DemoLogin,
    DemoSearch,
    demo_data_seed,
    demo_login_set,
    demo_team_set,
)
from tenants.models import Council
from tenants.selectors import council_by_code, council_url, site_url
from tenants.services import council_offboard, council_onboard

# The synthetic register files shipped with core, imported for the demo council whose area
# they cover (Brighton and Hove: local authority 846, postcode districts BN1 to BN3).
REGISTER_SAMPLES = {
    "E06000043": [
        (Organisation.Register.GIAS, "gias_edubasealldata.csv", ["846"]),
        (Organisation.Register.ODS_GP, "ods_epraccur.csv", ["BN1", "BN2", "BN3"]),
        (Organisation.Register.ODS_TRUST, "ods_etr.csv", ["BN1", "BN2", "BN3"]),
    ]
}


class Command(BaseCommand):
    help = (
        "Set up the demo: Brighton and Hove and Staffordshire with synthetic data and known "
        "logins (development only). Running it again reuses them; --reset starts afresh."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="drop the demo councils first")
        parser.add_argument("--children", type=int, default=300, help="children per council")

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "demo_setup makes accounts with published passwords: it only runs with "
                "PATCHWORK_ENV=development (or test), never in production"
            )
        children = int(options["children"])  # type: ignore[call-overload]
        councils: list[tuple[Council, list[DemoLogin], list[DemoSearch]]] = []
        for name, code in DEMO_COUNCILS:
            council = self._council(name, code, reset=bool(options["reset"]))
            with schema_context(council.schema_name):
                if Person.objects.exists():
                    self.stdout.write(f"  {name} already has people: keeping them")
                else:
                    report = demo_data_seed(
                        council_name=council.name,
                        council_code=council.code,
                        council_slug=council.slug,
                        children=children,
                        seed=int(code[1:]),
                    )
                    self.stdout.write(
                        f"  {name}: seeded {report.children:,} children, "
                        f"{report.involvements:,} involvements in {report.timings['total']:.1f}s"
                    )
                self._registers(council)
                logins, searches = demo_team_set(
                    council_name=council.name, council_slug=council.slug
                )
            councils.append((council, logins, searches))
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        operator = demo_login_set(
            email="operator@patchwork.example",
            full_name="Olu Operator",
            role=User.Role.OPERATOR,
            label="Platform operator",
        )
        self._print(councils, operator)

    def _registers(self, council: Council) -> None:
        samples = files("core") / "registers_samples"
        for register, name, area in REGISTER_SAMPLES.get(council.code, []):
            if Organisation.objects.filter(register=register).exists():
                continue
            with (samples / name).open("rb") as binary:
                report = register_import(register=register, binary=binary, area=area, actor=None)
            register_area_set(register=register, area=area)
            self.stdout.write(
                f"  {council.name}: {report.count('created')} organisations from {name}"
            )

    def _council(self, name: str, code: str, *, reset: bool) -> Council:
        council = council_by_code(code)
        if council is not None and reset:
            archive_dir = Path(tempfile.mkdtemp(prefix="patchwork-demo-reset-"))
            try:
                council_offboard(council=council, confirm_code=code, directory=archive_dir)
            finally:
                shutil.rmtree(archive_dir, ignore_errors=True)
            self.stdout.write(f"Reset: dropped {name} ({code})")
            council = None
        if council is not None:
            self.stdout.write(f"Reusing {council.name} ({code}): it is already set up")
            return council
        done = council_onboard(
            name=name,
            code=code,
            admin_email=f"admin@{slugify(name)}.example",
            admin_name="Alex Administrator",
        )
        self.stdout.write(f"Onboarded {name} ({code})")
        return done.council

    def _print(
        self, councils: list[tuple[Council, list[DemoLogin], list[DemoSearch]]], operator: DemoLogin
    ) -> None:
        out = self.stdout.write
        out("")
        out(self.style.SUCCESS("Patchwork demo (development only: these passwords are public)"))
        for council, logins, searches in councils:
            out("")
            out(f"{council.name}: {council_url(council)}")
            for login in logins:
                self._login(login, council.code)
            if searches:
                out("  Try, signed in as the social worker, a search for:")
                for search in searches:
                    out(f"    {search.description}: {search.terms}")
        out("")
        out(f"Operator console: {site_url(settings.PLATFORM_DOMAIN)}")
        self._login(operator, None)
        out("")
        out(
            "Sign in with the email and password, then the 6-digit code: add the key to an "
            "authenticator app, or run `patchwork demo_code EMAIL [--council CODE]`."
        )

    def _login(self, login: DemoLogin, code: str | None) -> None:
        council_arg = f" --council {code}" if code else ""
        self.stdout.write(f"  {login.label}")
        self.stdout.write(f"    email {login.email}   password {login.password}")
        command = f"patchwork demo_code {login.email}{council_arg}"
        self.stdout.write(f"    TOTP key {login.totp_base32}   code: {command}")
