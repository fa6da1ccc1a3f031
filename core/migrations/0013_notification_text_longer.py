"""A notification holds a service's whole reply to a contact request (issue 15): widening a
varchar is a change to the catalogue only, with no rewrite of the table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    # The lead renumbers this at merge; it needs only 0012's tables.
    dependencies = [
        ("core", "0012_email_claims"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="text",
            field=models.CharField(max_length=1500),
        ),
    ]
