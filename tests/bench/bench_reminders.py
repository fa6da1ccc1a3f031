"""Benchmark: the daily involvement-reminder run for a county-scale council.

Run on demand (not part of `make test`), against a database of its own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_reminders \\
        .venv/bin/python tests/bench/bench_reminders.py [--children 250000] [--write-docs]

It migrates that database, onboards Remindershire (E10000098) and seeds it at county scale
with `patchwork_demo.seeding.demo_data_seed` if it is not there yet (250,000 children, about
1,000,000 involvements, 20,000 practitioners; COPY, several minutes). Each run then clears
earlier reminders and their emails and times `teamwork.reminders.reminders_run` (set-based
SQL: INSERT…SELECT of the due involvements, one outbox row per practitioner, UPDATE…
RETURNING of the overdue ones, INSERT…SELECT of the team's notifications) three times:

  1. the first run (the seeded confirmations are spread over 0–120 days, so about a quarter
     of current involvements are due at once: the worst day);
  2. the next day (the steady state: only the involvements newly due);
  3. the grace period later (every unanswered reminder of run 1 flagged to its team).

It also renders and sends a sample of the reminder emails through Django's in-memory email
backend to measure the per-email cost of the sending task. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import ROOT, benchmark_database  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Reminders"
CODE = "E10000098"
SEND_SAMPLE = 2000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=250_000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    benchmark_database("patchwork_bench_reminders")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    os.environ.pop("REDIS_URL", None)  # emails are measured in-process, not queued
    import django

    django.setup()
    from django.conf import settings
    from django.core import mail
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from django_tenants.utils import schema_context
    from patchwork_demo.seeding import demo_data_seed

    from core.delivery.email import email_deliver
    from core.models import EmailOutbox, Involvement, Notification
    from teamwork.models import InvolvementReminder
    from teamwork.reminders import reminders_run
    from tenants.selectors import council_by_code
    from tenants.services import council_onboard

    call_command("migrate_platform", verbosity=0)
    council = council_by_code(CODE)
    if council is None:
        council = council_onboard(
            name="Remindershire", code=CODE, admin_email="admin@remindershire.example"
        ).council
        print(f"Onboarded {council}")
    figures: dict[str, object] = {}
    with schema_context(council.schema_name):
        if Involvement.objects.count() < args.children * 3:
            print(f"Seeding {council.name} with {args.children:,} children...")
            t0 = time.perf_counter()
            report = demo_data_seed(
                council_name=council.name,
                council_code=council.code,
                council_slug=council.slug,
                children=args.children,
                seed=2,
                progress=print,
            )
            figures["seed_seconds"] = round(time.perf_counter() - t0)
            print(f"Seeded {report.involvements:,} involvements in {figures['seed_seconds']}s")
        with connection.cursor() as cursor:
            cursor.execute(
                f"TRUNCATE {InvolvementReminder._meta.db_table}, {EmailOutbox._meta.db_table} "
                "CASCADE"
            )
        Notification.objects.filter(kind="involvement_unconfirmed").delete()
        total = Involvement.objects.count()
        current = Involvement.objects.filter(end_date__isnull=True).count()
        figures.update(involvements=total, current=current)
        print(f"{total:,} involvements, {current:,} current")
        now = timezone.now()
        runs = []
        for label, at in [
            ("first run (worst day)", now),
            ("next day (steady state)", now + timedelta(days=1)),
            ("after the grace period", now + timedelta(days=15)),
        ]:
            t0 = time.perf_counter()
            result = reminders_run(now=at)
            seconds = time.perf_counter() - t0
            runs.append((label, seconds, result))
            print(
                f"  {label}: {seconds:.1f}s – {result.reminded:,} reminded, "
                f"{len(result.emails):,} emails, {result.flagged:,} flagged, "
                f"{result.team_notified:,} team notifications",
                flush=True,
            )
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        mail.outbox = []
        sample = list(
            EmailOutbox.objects.filter(kind="involvement_reminder", status="queued")
            .order_by("pk")
            .values_list("pk", flat=True)[:SEND_SAMPLE]
        )
        t0 = time.perf_counter()
        for outbox_id in sample:
            email_deliver(outbox_id=outbox_id)
        send_seconds = time.perf_counter() - t0
        per_email_ms = send_seconds / max(1, len(sample)) * 1000
        print(
            f"  sending: {len(sample)} reminder emails rendered, signed and sent in "
            f"{send_seconds:.1f}s ({per_email_ms:.1f} ms each)"
        )
    if args.write_docs:
        write_docs(figures, runs, len(sample), per_email_ms)


def write_docs(figures, runs, sampled: int, per_email_ms: float) -> None:  # type: ignore[no-untyped-def]
    import platform

    emails_first = len(runs[0][2].emails)
    seeded = (
        f"; seeding took {figures['seed_seconds']} s (once)" if "seed_seconds" in figures else ""
    )
    rows = "\n".join(
        f"| {label} | {seconds:.1f} | {r.reminded:,} | {len(r.emails):,} | {r.flagged:,} | "
        f"{r.team_notified:,} |"
        for label, seconds, r in runs
    )
    body = f"""{SECTION}

The daily reminder run (`teamwork.reminders.reminders_run`, from Celery beat per council) on a
county-scale council seeded by `patchwork_demo.seeding.demo_data_seed`:
{figures["involvements"]:,} involvements, {figures["current"]:,} of them current, their
confirmations spread over the last 0–120 days (interval 90 days, grace 14 days).
Set-based SQL throughout: no per-row ORM loop.

| run | seconds | reminders | emails queued | flagged | team notifications |
| --- | ---: | ---: | ---: | ---: | ---: |
{rows}

Sending (the Celery task's work per email: render, sign each link, send, mark sent),
through Django's in-memory backend: {per_email_ms:.1f} ms per email over {sampled:,}
emails. The worst day's {emails_first:,} emails are about
{emails_first * per_email_ms / 60000:.0f} worker-minutes, spread over the workers in
batches of 200 (`email_send_batch`).

Verdict: each run finishes in {"seconds" if max(s for _, s, _ in runs) < 60 else "minutes"},
not hours.

Measured on {platform.machine()}, {os.cpu_count()} cores shared with other work, PostgreSQL
on 127.0.0.1{seeded}. Rerun:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_reminders \\
        .venv/bin/python tests/bench/bench_reminders.py --write-docs
"""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body.rstrip("\n") + "\n" + (text[end:] if end != -1 else "")
    DOCS.write_text(text.rstrip("\n") + "\n")
    print(f"Wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
