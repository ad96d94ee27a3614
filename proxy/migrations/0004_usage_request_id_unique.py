"""``UsageRecord.request_id`` becomes unique: the usage ingester's inserts are idempotent on it.

Rows the old writer stored twice under one id are merged first (the oldest row stays).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.models import Count, Min


def drop_duplicates(apps: Any, schema_editor: Any) -> None:
    record = apps.get_model("proxy", "UsageRecord")
    dupes = record.objects.values("request_id").annotate(n=Count("id"), keep=Min("id")).filter(n__gt=1)
    for row in dupes.iterator():
        record.objects.filter(request_id=row["request_id"]).exclude(id=row["keep"]).delete()


class Migration(migrations.Migration):
    dependencies = [("proxy", "0003_provider_type_demo")]

    operations = [
        migrations.RunPython(drop_duplicates, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="usagerecord",
            name="request_id",
            field=models.CharField(max_length=64, unique=True),
        ),
    ]
