"""Emails carry when to try again and who holds them: the sweep sends what the broker
never carried, and a claim keeps a late broker message from sending an email twice."""

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    # The lead renumbers this after 0011 at merge; it needs only 0010's tables.
    dependencies = [
        ("core", "0011_fewer_indexes_to_write"),
    ]

    operations = [
        migrations.AddField(
            model_name="emailoutbox",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="emailoutbox",
            name="next_attempt_at",
            field=models.DateTimeField(
                db_default=django.db.models.functions.datetime.Now(),
                default=django.utils.timezone.now,
            ),
        ),
    ]
