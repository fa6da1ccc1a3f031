from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_second_factor_resets")]

    operations = [
        migrations.AddField(
            model_name="invitation",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
