import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from patchwork_demo.seeding import demo_data_seed
from tenants.selectors import council_by_code


class Command(BaseCommand):
    help = (
        "Fill a council with synthetic organisations, practitioners, families, children and "
        "involvements (Faker en_GB; about 4 involvements per child, 1 practitioner per 12)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--council", required=True, help="ONS code, e.g. E06000043")
        parser.add_argument("--children", type=int, required=True, help="e.g. 250000")
        parser.add_argument("--seed", type=int, default=0, help="same seed, same people")

    def handle(self, *args: object, **options: object) -> None:
        council = council_by_code(str(options["council"]))
        if council is None:
            raise CommandError(f"No council with the code {options['council']} is on this platform")
        children = int(options["children"])  # type: ignore[call-overload]
        if children < 1:
            raise CommandError("--children must be at least 1")
        self.stdout.write(f"Seeding {council.name} with {children:,} children...")
        started = time.perf_counter()
        with schema_context(council.schema_name):
            report = demo_data_seed(
                council_name=council.name,
                council_code=council.code,
                council_slug=council.slug,
                children=children,
                seed=int(options["seed"]),  # type: ignore[call-overload]
                progress=self.stdout.write,
            )
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {council.name} in {elapsed:.1f}s: {report.organisations:,} organisations, "
                f"{report.practitioners:,} practitioners, {report.families:,} families, "
                f"{report.children:,} children, {report.adults:,} adults, "
                f"{report.involvements:,} involvements, {report.relationships:,} family links"
            )
        )
        steps = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in report.timings.items())
        self.stdout.write(f"  timings: {steps}")
